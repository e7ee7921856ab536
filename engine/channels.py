"""Which adapter delivers each channel: channels.yaml, or the built-in `file` adapter for everything.

Only adapters that exist can be configured: an adapter name that is not registered (built-in or via the
`collect.channels` entry point group) is an error naming the ones available, never a silent fallback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ChannelsError(Exception):
    pass


def _expand(value, where: str):
    if isinstance(value, str):
        def env(match):
            name = match.group(1)
            if name not in os.environ:
                raise ChannelsError(f"{where}: environment variable {name} is not set")
            return os.environ[name]
        return _ENV.sub(env, value)
    return value


class Channels:
    """channel name -> adapter instance, created on first use."""

    def __init__(self, config: dict[str, dict] | None = None):
        from ..adapters.base import registry

        self.config = config or {}
        self.classes = registry()
        self.instances: dict[str, object] = {}
        for channel, settings in self.config.items():
            name = settings.get("adapter")
            if name not in self.classes:
                raise ChannelsError(f"channels.{channel}: unknown adapter '{name}' (available: "
                                    f"{', '.join(sorted(self.classes))})")

    def __call__(self, channel: str):
        if channel not in self.instances:
            settings = dict(self.config.get(channel) or {"adapter": "file"})
            cls = self.classes[settings.pop("adapter")]
            settings = {k: _expand(v, f"channels.{channel}.{k}") for k, v in settings.items()}
            self.instances[channel] = cls(channel, **settings)
        return self.instances[channel]


def load_channels(path: str | Path | None) -> Channels:
    if path is None:
        return Channels()
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ChannelsError(f"{path}: cannot read: {exc}") from None
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, dict):
        raise ChannelsError(f"{path}: expected a `channels:` mapping of channel -> {{adapter: ...}}")
    return Channels({str(k): dict(v or {}) for k, v in channels.items()})
