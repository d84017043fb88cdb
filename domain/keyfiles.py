"""Key files: created once, readable by their owner only, never overwritten."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def write_key_file(path: str, content: bytes) -> None:
    """Create a key file with mode 0600; refuse to replace an existing one."""
    key_file = Path(path)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(
        key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR
    )
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
