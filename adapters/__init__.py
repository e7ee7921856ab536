"""Channel adapters: the Channel protocol, the registry (entry points `collect.channels`), built-ins."""
