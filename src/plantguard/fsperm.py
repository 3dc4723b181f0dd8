"""Owner-only files at rest, whatever the umask.

The data directory holds every reading, the audit log, password hashes, keys and sealed secrets: it is made 0700
and its files 0600, as PostgreSQL does with its own (it refuses a group- or world-readable data directory). A
directory found readable by others is made owner-only at start, with a log line; the posture audit reports it
when it finds it so (`exposed`).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def private_dir(path: str | Path) -> Path:
    """`path` (and missing parents) made 0700 when created here; an existing directory is made owner-only."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & 0o077:
        os.chmod(path, stat.S_IMODE(mode) & 0o700)
    return path


def write_private(path: str | Path, data: bytes, *, exclusive: bool = False, mode: int = 0o600) -> None:
    """Writes `data` to `path` as an owner-only file (or `mode`, for a public file such as a CRL), atomically (a
    temporary file beside it, then rename), never following a link planted at the temporary name. exclusive:
    FileExistsError when `path` exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def exposed(root: str | Path, limit: int = 10_000) -> list[tuple[str, int]]:
    """(path, mode) of `root` and what it holds that group or others may read, write or enter (links are not
    followed; at most `limit` entries are looked at)."""
    root = Path(root)
    out: list[tuple[str, int]] = []
    if not root.exists():
        return out
    seen = 0
    for p in [root, *_walk(root)]:
        seen += 1
        if seen > limit:
            break
        try:
            st = p.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        if st.st_mode & 0o077:
            out.append((str(p), stat.S_IMODE(st.st_mode)))
    return out


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            yield Path(dirpath) / n


def secure_data_dir(path: str | Path) -> list[str]:
    """The data directory made owner-only with everything in it; the process umask gains 077 so that what the
    store and its libraries create from now on is owner-only too. Returns what had to be fixed (logged)."""
    os.umask(os.umask(0o077) | 0o077)
    path = Path(path)
    fixed = []
    if path.exists():
        for p, mode in exposed(path):
            try:
                os.chmod(p, mode & 0o700)
                fixed.append(p)
            except OSError as e:
                log.error("could not make %s owner-only: %s", p, e)
    private_dir(path)
    if fixed:
        log.warning("the data directory %s was readable by other users: made %d entr%s owner-only (%s%s)", path,
                    len(fixed), "y" if len(fixed) == 1 else "ies", ", ".join(fixed[:5]), ", ..." if len(fixed) > 5 else "")
    return fixed
