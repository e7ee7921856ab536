"""The engine: compiler, plan, decision core, simulator and their helpers."""
