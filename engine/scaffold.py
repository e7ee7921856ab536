"""`collect init`: copy the starter project shipped in engine/starter/ into a folder."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

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
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return [dst for _, dst in targets]
