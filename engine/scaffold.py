"""`collect init`: copy the starter project shipped in engine/starter/ into a folder."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from .files import _umask_mode

STARTER = Path(__file__).with_name("starter")


class StarterExists(Exception):
    pass


def write_starter(directory: str | Path, force: bool = False) -> list[Path]:
    """Copy every starter file; refuse (before writing anything) if one would be overwritten. OSError when
    the folder cannot hold them (a file of that name, no permission)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():  # said at once: mkdir would say "File exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))
    files = sorted(p for p in STARTER.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    targets = [(src, directory / src.relative_to(STARTER)) for src in files]
    clashes = [str(dst) for _, dst in targets if dst.exists()]
    if clashes and not force:
        raise StarterExists(f"would overwrite {', '.join(clashes)}")
    made = {d for _, dst in targets for d in dst.parents if not d.exists()}  # to remove if this fails
    written: list[tuple[Path, Path]] = []
    try:  # every file beside its target first, then renamed into place: a full disk leaves nothing behind
        for src, dst in targets:
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
            written.append((Path(tmp), dst))
            os.chmod(tmp, _umask_mode())  # mkstemp's 0600 would make the project unreadable to the team
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(src.read_bytes())
            except OSError as exc:  # said of the file being written, not of the package's copy
                raise OSError(exc.errno, exc.strerror, str(dst)) from None
        for tmp, dst in written:
            os.replace(tmp, dst)
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        for folder in sorted(made, key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: the ones this call made
        raise
    return [dst for _, dst in targets]
