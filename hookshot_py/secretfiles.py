"""Files that hold secrets (registration tokens, passFile, configs with secrets): written owner-only, checked at start.

Anyone who can read the registration can impersonate the homeserver to the bridge and the bridge to the
homeserver; the passFile decrypts every stored token. So such files are written 0600, and an existing one
that its group or other users can read is reported with the ``chmod`` that fixes it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (0600), replacing the file atomically.

    The bytes are never on disk under a wider mode: the temporary file is created 0600 before anything is
    written to it, and an existing file (whatever its mode) is replaced, not rewritten in place.
    """
    content = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), PRIVATE_MODE)
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def exposure(path: Path, what: str) -> str | None:
    """A warning when ``path`` exists and its group or other users may read it; ``what`` says what it holds."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    readers = [who for who, bit in (("its group", stat.S_IRGRP), ("other users", stat.S_IROTH)) if mode & bit]
    if not readers:
        return None
    return (
        f"{path} holds {what} but {' and '.join(readers)} can read it (mode {mode:04o}); "
        f"restrict it with: chmod 600 {shlex.quote(str(path))}"
    )
