"""The built-in `file` adapter: one JSON line per message in outbox/<channel>.jsonl.

It makes a first `collect run` work with no provider account, and it is idempotent: a message whose key
is already in the file (a tick that crashed after writing but before recording the outcome) is not
written again, whichever process wrote it.

Each send holds an exclusive `flock` on the outbox while it reads what other processes appended since its
last send, checks the key and appends the line, so that `collect serve` and a cron `collect run` (or two
channels given the same path) never write a key twice. Under the lock, a last line without its line break
(a process killed in the middle of a write, a full disk) is cut off before the next line goes in: its
message was not delivered, and is sent again in full. `sync()` puts the lines written so far on disk:
the runner calls it before it records their outcomes in the store, which survives a power cut, so that
no letter recorded as sent can be lost by one (once per tick, not per line: an fsync costs ~1 ms).

A `path` that is a folder (or inside a file) is a channels.yaml error at load. An outbox that cannot be
opened, locked or written at send time (no permission, a read-only or full disk, a folder that cannot be
made) is the channel's failure, not the message's: `send` returns an account-level result, so the runner
stops the channel for the tick and its messages wait without using an attempt, instead of each being
retried and then falling back to another channel because of a wrong path. The file's folder is made when
missing (outbox/ on a fresh machine).

POSIX only (`fcntl.flock`): elsewhere the adapter refuses to start rather than risk duplicate letters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationInfo, field_validator

from .base import Adapter, DeliveryResult, Message, Settings, json_value, message_dict

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None


class FileSettings(Settings):
    path: str | None = None  # default: outbox/<channel>.jsonl in the working directory

    @field_validator("path")
    @classmethod
    def _a_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A folder, or a path inside a file, can never take a line: say so at load, not at each send. (A
        missing folder is fine: the first send makes it.) The value is not shown: it may come from ${ENV}."""
        if not value:
            return value
        channel = (info.context or {}).get("channel") or "<channel>"
        path = Path(value)
        if os.path.isdir(path):
            raise ValueError(f"is a folder, not a file: name a file in it, such as <folder>/{channel}.jsonl")
        for parent in path.parents:  # os.path's checks take an unreadable folder as missing, never raise
            if os.path.lexists(parent):
                if not os.path.isdir(parent):
                    raise ValueError("is inside a file, not a folder: no file can be made there")
                break
        return value


class FileChannel(Adapter):
    name = "file"
    supports_html = True
    supports_templates = True  # the line keeps template_name and params as they are
    free_text = True
    dedupes = True  # a key already in the file is not written again
    Settings = FileSettings

    def __init__(self, channel: str, **settings):
        super().__init__(channel, **settings)
        if fcntl is None:
            raise RuntimeError("the file adapter needs fcntl.flock (Linux, macOS, BSD) to keep two processes "
                               "from writing the same message twice; not available on this platform")
        path = self.settings.path
        self.path = Path(path) if path else Path("outbox") / f"{channel}.jsonl"
        self._keys: set[str] = set()  # the keys in the file, up to byte _offset
        self._offset = 0  # the end of the last complete line read
        self._file: tuple[int, int] | None = None  # (device, inode) the keys were read from
        self._unsynced = False  # lines written since the last sync()

    def sync(self) -> None:
        """Put the lines written so far on disk. (A file a consumer renamed away since is theirs.)"""
        if not self._unsynced or not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._unsynced = False

    def send(self, message: Message) -> DeliveryResult:
        line = (json.dumps(message_dict(message), ensure_ascii=False, default=json_value) + "\n").encode("utf-8")
        try:
            return self._append(message.key, line)
        except OSError as exc:  # the outbox's problem, so every message's: stop the channel, keep the attempts
            return DeliveryResult.account("outbox", f"{self.path} cannot be written: {exc.strerror or exc}")

    def _append(self, key: str, line: bytes) -> DeliveryResult:
        """Append the line unless the key is in the file already; OSError when the outbox cannot be
        opened, locked or written (a torn tail left by a failed write is cut off by the next send)."""
        fd = self._open_locked()
        try:
            if key in self._catch_up(fd):
                return DeliveryResult.sent(key)
            # writes go to the end (O_APPEND): _catch_up has cut off a torn tail, so this starts a line
            view = memoryview(line)
            while view:  # one write(); a regular file takes it whole unless the disk is full
                view = view[os.write(fd, view):]
            self._unsynced = True
            self._keys.add(key)
            self._offset += len(line)
        finally:
            os.close(fd)  # releases the lock
        return DeliveryResult.sent(key)

    def _open_locked(self) -> int:
        """The outbox, opened for appending and locked; the file at `path` once the lock is held (another
        process may have renamed it away in between)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held, now = os.fstat(fd), os.stat(self.path)
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                return fd
            os.close(fd)

    def _catch_up(self, fd: int) -> set[str]:
        """Read the lines appended since the last call (all of them when the file is new, was replaced or
        shrank), and cut off a last line that has no line break; the lock must be held."""
        stat = os.fstat(fd)
        if (stat.st_dev, stat.st_ino) != self._file:
            _sync_folder(self.path)  # the file may be new: its name must survive a power cut too
            self._keys, self._offset, self._file = set(), 0, (stat.st_dev, stat.st_ino)
        elif stat.st_size < self._offset:  # truncated by someone
            self._keys, self._offset = set(), 0
        if stat.st_size == self._offset:
            return self._keys
        with open(fd, "rb", closefd=False) as reader:
            reader.seek(self._offset)
            for raw in reader:
                key = _key(raw)
                if not raw.endswith(b"\n"):  # the last line, cut short
                    if key is None:  # torn: a writer died mid-line; its message goes again, whole
                        os.ftruncate(fd, self._offset)
                        break
                    os.write(fd, b"\n")  # a whole record that only lacks its line break (an edited file)
                    raw += b"\n"
                if key is not None:
                    self._keys.add(key)
                self._offset += len(raw)
                if self._offset >= stat.st_size:
                    break  # read no further than the size under the lock (not the line break just added)
        return self._keys


def _key(raw: bytes) -> str | None:
    try:
        key = json.loads(raw)["key"]
    except (ValueError, KeyError, TypeError):
        return None
    return key if isinstance(key, str) else None


def _sync_folder(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
