"""File helpers every layer uses: atomic writes, refusing to replace what is not a regular file,
and cleaning the temp files an interrupted process left behind.

A temp file is named ``.NAME.tmp-HOST-PID-XXXXXXXX[SUFFIX]`` beside its target: the next run on the
same host removes those whose process no longer exists (:func:`clean_stale_temps`), so a kill during
a write never leaves an orphan for good, and a concurrent writer's file is never touched.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from unihand.errors import UserError

_TAG = ".tmp-"


def current_umask() -> int:
    """The process umask (read without changing it for longer than two calls)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_mode() -> int:
    """Permissions a plainly created file gets (``0o666`` less the umask)."""
    return 0o666 & ~current_umask()


def _owner_tag() -> str:
    return f"{_TAG}{socket.gethostname().replace('-', '_')}-{os.getpid()}-"


def check_target(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` if it may be written: it does not exist or is a regular file (a symlink, folder,
    FIFO or device is never replaced); else a one-line :class:`UserError`."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as err:
        raise UserError(f"{path}: cannot check the {what} path ({err.strerror or err})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a symlink" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or
                stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise UserError(f"{path}: the {what} path exists and is {kind}; refusing to replace it (give a file path)")
    return path


def temp_path(path: Path, suffix: str = "") -> str:
    """A new, empty temp file beside ``path`` named so that :func:`clean_stale_temps` knows its owner."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{_owner_tag()}", suffix=suffix or path.suffix)
    os.close(fd)
    return tmp


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any], suffix: str = "") -> Path:
    """Write through ``write(tmp_path)`` into a temp file beside ``path``, then rename.

    Readers never see a half-written file, even if the process is interrupted; ``path`` must be
    absent or a regular file (:func:`check_target`).
    """
    path = check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path, suffix)
    except OSError as err:
        raise UserError(f"{path}: cannot write there ({err.strerror or err})") from None
    try:
        write(tmp)
        os.chmod(tmp, default_mode())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Remove the temp files (and staging folders) of processes on this host that no longer run.

    Returns what was removed. Entries of other hosts (a shared file system) and of live processes
    are left alone.
    """
    import shutil

    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = socket.gethostname().replace("-", "_")
    removed = []
    entries = folder.rglob(f".*{_TAG}*") if recursive else folder.glob(f".*{_TAG}*")
    for p in sorted(entries):
        tag = p.name.rsplit(_TAG, 1)[1]
        parts = tag.split("-", 2)
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit() or _pid_alive(int(parts[1])):
            continue
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        except FileNotFoundError:
            continue
        removed.append(p)
    return removed


def strict_json(obj: Any, **kwargs: Any) -> str:
    """JSON text with every non-finite float as ``null`` ("not computable"): never a bare ``NaN``,
    which is not JSON. ``kwargs`` go to :func:`json.dumps`."""
    import json
    import math

    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    default = kwargs.pop("default", None)
    # numpy scalars and arrays become Python values first, so their NaNs are cleaned too
    plain = json.loads(json.dumps(obj, default=default)) if default else obj
    return json.dumps(clean(plain), allow_nan=False, **kwargs)
