"""Key files: created once, readable by their owner only, never overwritten."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def write_key_file(path: str, content: bytes) -> None:
    """Create a key file with mode 0600 and make it durable (the file and its folder entry
    are fsynced before this returns); refuse to replace an existing one. A file that could
    not be written whole is removed, so a key file either holds its key or does not exist."""
    key_file = Path(path)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(
        key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_folder(key_file.parent)
    except BaseException:
        key_file.unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    """Make the new file's folder entry durable too (a crash could otherwise lose it)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        descriptor = os.open(folder, flags)
    except OSError:
        return  # platforms without directory handles (Windows) persist entries on close
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
