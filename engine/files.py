"""Small file helpers shared by the commands that write output."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


# A CSV cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...) from a provider's
# answer, or from an ERP's customer id, would run when finance opens the audit log in Excel).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading ' before a formula's first character
    (OWASP's advice for CSV injection). JSON lines keep values as they are."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _umask_mode() -> int:
    """The mode a plain open() gives a new file (0666 less the umask): mkstemp makes 0600 files, and an
    output file should be as readable as any other the user writes."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | Path, text: str) -> None:
    """Write a whole file or nothing: a temporary file in the same folder, renamed over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, _umask_mode())
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_atomic(source: str | Path, target: str | Path) -> None:
    """Move a finished file over the target in one step (same file system: a rename, else a copy to a
    temporary file beside the target, then a rename)."""
    target = Path(target)
    try:
        os.replace(source, target)
        return
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, _umask_mode())
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
