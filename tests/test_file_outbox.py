"""The `file` adapter's promise (`dedupes`) across processes and crashes: a key in the outbox is never
written again, whoever wrote it and whenever, and a line torn by a crash never glues onto the next one."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from collect.adapters import file as file_adapter
from collect.adapters.base import Message
from collect.adapters.file import FileChannel


def message(key: str) -> Message:
    return Message(key=key, channel="letter", customer_id="C-" + key, invoice_ids=("F1",), recipient=None,
                   body="Estimado cliente: su factura F1 está vencida.")


def line(key: str) -> str:
    from collect.adapters.base import message_dict

    return json.dumps(message_dict(message(key)), ensure_ascii=False) + "\n"


def keys(path) -> list[str]:
    """The keys of the outbox, in order; a line that is not JSON fails the test."""
    return [json.loads(text)["key"] for text in path.read_text(encoding="utf-8").splitlines()]


def test_a_key_another_process_wrote_since_the_last_send_is_not_written_again(tmp_path):
    path = tmp_path / "letters.jsonl"
    service = FileChannel("letter", path=str(path))  # `collect serve`: one adapter for its lifetime
    assert service.send(message("k1")).status == "sent"
    cron = FileChannel("letter", path=str(path))  # a cron `collect run`, killed before storing outcomes
    cron.send(message("k2"))
    with path.open("a", encoding="utf-8") as handle:  # or any process writing the file
        handle.write(line("k3"))
    for key in ("k2", "k3", "k4"):  # the service takes the crashed run's contacts over
        assert service.send(message(key)).status == "sent"
    assert keys(path) == ["k1", "k2", "k3", "k4"]


def test_a_replaced_outbox_is_read_again(tmp_path):
    path = tmp_path / "letters.jsonl"
    adapter = FileChannel("letter", path=str(path))
    adapter.send(message("k1"))
    (tmp_path / "new.jsonl").write_text(line("k1") + line("k9"), encoding="utf-8")
    os.replace(tmp_path / "new.jsonl", path)
    adapter.send(message("k9"))
    adapter.send(message("k2"))
    assert keys(path) == ["k1", "k9", "k2"]


@pytest.mark.parametrize("same_adapter", [True, False])
def test_a_line_torn_by_a_crash_is_replaced_by_the_whole_line(tmp_path, same_adapter):
    path = tmp_path / "letters.jsonl"
    first = FileChannel("letter", path=str(path))
    first.send(message("k1"))
    with path.open("a", encoding="utf-8") as handle:  # a process killed in the middle of writing k2's line
        handle.write(line("k2")[:40])
    again = first if same_adapter else FileChannel("letter", path=str(path))  # the next tick resends k2
    assert again.send(message("k2")).status == "sent"
    again.send(message("k3"))
    assert keys(path) == ["k1", "k2", "k3"]
    assert path.read_text(encoding="utf-8").endswith("\n")


def test_a_whole_last_record_without_its_line_break_is_kept(tmp_path):
    path = tmp_path / "letters.jsonl"
    path.write_text(line("k1").rstrip("\n"), encoding="utf-8")  # e.g. an edited file
    adapter = FileChannel("letter", path=str(path))
    adapter.send(message("k1"))
    adapter.send(message("k2"))
    assert keys(path) == ["k1", "k2"]


def test_a_send_waits_for_another_writer_and_then_sees_its_line(tmp_path):
    path = tmp_path / "letters.jsonl"
    adapter = FileChannel("letter", path=str(path))
    adapter.send(message("k1"))
    with path.open("a", encoding="utf-8") as other:  # another process, between its key check and its write
        fcntl.flock(other, fcntl.LOCK_EX)
        sending = threading.Thread(target=adapter.send, args=(message("k2"),))
        sending.start()
        time.sleep(0.2)
        assert sending.is_alive()  # blocked on the lock
        other.write(line("k2"))
        other.flush()
    sending.join(5)
    assert not sending.is_alive() and keys(path) == ["k1", "k2"]



def test_a_reader_that_takes_the_lock_and_moves_the_file_away_loses_no_line(tmp_path):
    path, taken = tmp_path / "letters.jsonl", tmp_path / "letters.taken.jsonl"
    adapter = FileChannel("letter", path=str(path))
    adapter.send(message("k1"))
    with path.open("rb") as held:  # a consumer: lock, rename, release
        fcntl.flock(held, fcntl.LOCK_EX)
        sending = threading.Thread(target=adapter.send, args=(message("k2"),))
        sending.start()
        time.sleep(0.2)  # the send has opened the file and waits for the lock
        os.replace(path, taken)
        FileChannel("letter", path=str(path)).send(message("k3"))  # another process starts a new file
    sending.join(5)
    assert keys(taken) == ["k1"] and keys(path) == ["k3", "k2"]

SENDER = """
import os, sys, time
from collect.adapters.base import Message
from collect.adapters.file import FileChannel
adapter = FileChannel("letter", path=sys.argv[1])
open(sys.argv[2] + "." + str(os.getpid()), "w").close()  # ready
while not os.path.exists(sys.argv[2]):  # all start together
    time.sleep(0.001)
for i in range(int(sys.argv[3])):
    adapter.send(Message(key=f"k{i}", channel="letter", customer_id="C", invoice_ids=(), recipient=None, body="x" * 500))
"""


def test_processes_writing_the_same_keys_at_once_write_each_key_once(tmp_path):
    path, go = tmp_path / "letters.jsonl", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", SENDER, str(path), str(go), "200"], stderr=subprocess.PIPE)
             for _ in range(4)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    assert all(p.wait(timeout=120) == 0 for p in procs), [p.stderr.read() for p in procs]
    assert Counter(keys(path)) == Counter(f"k{i}" for i in range(200))


def test_sync_puts_the_lines_written_on_disk_once(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd).st_size) or real(fd))
    path = tmp_path / "letters.jsonl"
    adapter = FileChannel("letter", path=str(path))
    adapter.send(message("k1"))
    adapter.send(message("k2"))
    synced.clear()  # (the folder of a new file is synced at once)
    adapter.sync()
    adapter.sync()  # nothing new since
    assert synced == [path.stat().st_size]


def test_without_flock_the_adapter_refuses_to_start(monkeypatch):
    monkeypatch.setattr(file_adapter, "fcntl", None, raising=False)
    with pytest.raises(RuntimeError, match="flock"):
        FileChannel("letter")
