"""The built-in `file` adapter: one JSON line per message in outbox/<channel>.jsonl.

It makes a first `collect run` work with no provider account, and it is idempotent: a message whose key
is already in the file (a tick that crashed after writing but before recording the outcome) is not
written again.
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import Adapter, DeliveryResult, Message, Settings, message_dict


class FileSettings(Settings):
    path: str | None = None  # default: outbox/<channel>.jsonl in the working directory


class FileChannel(Adapter):
    name = "file"
    supports_html = True
    supports_templates = True  # the line keeps template_name and params as they are
    free_text = True
    dedupes = True  # a key already in the file is not written again
    Settings = FileSettings

    def __init__(self, channel: str, **settings):
        super().__init__(channel, **settings)
        path = self.settings.path
        self.path = Path(path) if path else Path("outbox") / f"{channel}.jsonl"
        self._keys: set[str] | None = None

    def _known(self) -> set[str]:
        if self._keys is None:
            self._keys = set()
            if self.path.exists():
                with self.path.open(encoding="utf-8") as handle:
                    for line in handle:
                        try:
                            self._keys.add(json.loads(line)["key"])
                        except (ValueError, KeyError):
                            continue  # a torn last line from a crash: the message is sent again
        return self._keys

    def send(self, message: Message) -> DeliveryResult:
        if message.key in self._known():
            return DeliveryResult.sent(message.key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(message_dict(message), ensure_ascii=False, default=str)
        # no fsync per message: a line lost in a crash leaves its contact `sending`, and the next tick
        # writes it again (the key check above keeps a line that did survive from being doubled)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        self._keys.add(message.key)
        return DeliveryResult.sent(message.key)
