"""Replace a set of output files in a folder as one unit: all old or all new, never a mix.

Why a journal and not a folder swapped by one rename: the outputs live directly in the user's
folder (``OUTDIR/right_motion.npz``, ...) next to files of the user's own, so the set cannot be
one directory whose rename switches it (a rename of OUTDIR would take the user's files along,
and a subfolder would change every path the tools have always written). Instead:

1. Every new file is written into a fresh staging folder ``OUTDIR/.unihand-staging-XXXX/new/``
   (held with a lock while the run is alive).
2. ``journal.json`` is written there (state ``prepared``: the old names to move out, the new
   names to move in); every owned file of the old set is moved into ``.../old/``.
3. The journal is rewritten with state ``committed``: this one atomic rename is the commit point.
4. The new files are moved into OUTDIR; the staging folder is removed.

A failure inside the process (an ``OSError`` while moving) is rolled back at once: the new files
go back to staging, the journal back to ``prepared``, the old files back into place, so OUTDIR
holds the complete old set. A run killed mid-swap leaves the journal; the next run (any
:class:`OutputSet` or :func:`recover` on that folder) finishes it: ``prepared`` rolls back to
the old set, ``committed`` rolls forward to the new one. Staging folders of killed runs and
``.NAME.XXXX`` temporary files of owned names are removed then too; a staging folder whose lock
is held (a run still writing) is left alone.

Only **owned** names are ever moved or removed: the caller lists them (``unihand estimate``:
every ``OUTPUT_NAMES`` pattern for both hands; ``unihand export``: the names it writes). Owned
files of the old set that the new set lacks (an overlay after a ``--no-render`` rerun, the other
hand of an earlier run) are removed as part of the swap.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from unihand.errors import UserError
from unihand.files import current_umask

STAGING_PREFIX = ".unihand-staging-"
JOURNAL = "journal.json"
_LOCK = ".lock"

try:  # POSIX: a live run holds an flock on its staging folder's lock file
    import fcntl
except ImportError:  # pragma: no cover - Windows: every staging folder found counts as stale
    fcntl = None  # type: ignore[assignment]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_journal(staging: Path, state: str, old: list[str], new: list[str]) -> None:
    tmp = staging / f".{JOURNAL}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"state": state, "old": old, "new": new}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, staging / JOURNAL)
    _fsync_dir(staging)


def _try_lock(path: Path) -> Any:
    """An open, exclusively locked file object on ``path``, or None when another process holds it."""
    fh = open(path, "a+")
    if fcntl is None:
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def _finish(outdir: Path, staging: Path) -> str:
    """Complete or undo the swap recorded in ``staging``'s journal; returns what was done."""
    try:
        journal = json.loads((staging / JOURNAL).read_text())
        state, old, new = journal["state"], list(journal["old"]), list(journal["new"])
    except (OSError, ValueError, KeyError, TypeError):
        return "discarded"  # killed before the swap began: the old set was never touched
    if state == "committed":  # roll forward: the owned set becomes exactly the new one
        for name in old:
            if name not in new and (outdir / name).exists():
                _remove(outdir / name)
        for name in new:
            if (staging / "new" / name).exists():
                _remove(outdir / name)  # (a directory output cannot be replaced by a rename)
                os.replace(staging / "new" / name, outdir / name)
        return "completed"
    for name in old:  # prepared: roll back
        if (staging / "old" / name).exists() and not (outdir / name).exists():
            os.replace(staging / "old" / name, outdir / name)
    return "rolled back"


def recover(outdir: str | os.PathLike, owned: Iterable[str] | Callable[[str], bool] = ()) -> list[str]:
    """Finish swaps of killed runs in ``outdir``, remove their staging folders and the temporary
    ``.NAME.XXXX`` files of owned names; returns a note per staging folder handled."""
    outdir = Path(outdir)
    notes: list[str] = []
    if not outdir.is_dir():
        return notes
    is_owned = owned if callable(owned) else set(owned).__contains__
    for entry in sorted(outdir.iterdir()):
        name = entry.name
        if name.startswith(STAGING_PREFIX) and entry.is_dir():
            lock = _try_lock(entry / _LOCK) if (entry / _LOCK).exists() else None
            if (entry / _LOCK).exists() and lock is None:
                continue  # a live run
            try:
                notes.append(f"{name}: {_finish(outdir, entry)}")
            finally:
                if lock is not None:
                    lock.close()
            shutil.rmtree(entry, ignore_errors=True)
        elif name.startswith("."):
            # atomic_write's temp files are ".{name}.{random}{suffix}" (an OBJ folder's ".{name}.{random}")
            parts = name[1:].split(".")
            if any(is_owned(".".join(parts[:k])) for k in range(1, len(parts))):
                _remove(entry)
    return notes


class OutputSet:
    """Stage files, then swap them into ``outdir`` as one unit (module doc).

    ``with OutputSet(outdir, owned) as out: write(out.path("right.bvh"))`` commits when the block
    ends normally (``out.files`` then maps names to their final paths) and discards the staging
    folder, leaving ``outdir`` as it was, when it raises.
    """

    def __init__(self, outdir: str | os.PathLike, owned: Iterable[str] | Callable[[str], bool]) -> None:
        self.outdir = Path(outdir)
        self.is_owned = owned if callable(owned) else set(owned).__contains__
        self.staging: Path | None = None
        self.files: dict[str, Path] = {}
        self._lock: Any = None

    def __enter__(self) -> "OutputSet":
        try:
            self.outdir.mkdir(parents=True, exist_ok=True)
            recover(self.outdir, self.is_owned)
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.outdir))
            self._lock = _try_lock(self.staging / _LOCK)
            (self.staging / "new").mkdir()
        except OSError as err:
            self._discard()
            raise UserError(f"{self.outdir}: cannot write outputs there ({err.strerror or err})") from None
        return self

    def path(self, name: str) -> Path:
        """Where to write the output ``name`` (a plain, owned file or folder name)."""
        if Path(name).name != name or name in ("", ".", "..") or name.startswith("."):
            raise ValueError(f"output name {name!r} must be a plain file name")
        if not self.is_owned(name):
            raise ValueError(f"output name {name!r} is not one this set owns")
        assert self.staging is not None, "use OutputSet as a context manager"
        return self.staging / "new" / name

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException as err:
                if not isinstance(err, Exception):
                    self._release()
                raise
        elif issubclass(exc_type, Exception):
            self._discard()
        else:
            self._release()

    def _release(self) -> None:
        """Ctrl-C / exit mid-swap: unlock, leaving the journal for the next run to finish."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _discard(self) -> None:
        self._release()
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def commit(self) -> dict[str, Path]:
        """Swap the staged files in; on an OSError roll back (outdir keeps the old set) and raise
        a UserError. Returns ``files``."""
        assert self.staging is not None
        staging, outdir = self.staging, self.outdir
        new_dir, old_dir = staging / "new", staging / "old"
        new = sorted(p.name for p in new_dir.iterdir() if not p.name.startswith("."))
        mode, dmode = 0o666 & ~current_umask(), 0o777 & ~current_umask()
        for name in new:
            p = new_dir / name
            if p.is_dir():
                os.chmod(p, dmode)
                for q in p.rglob("*"):
                    os.chmod(q, dmode if q.is_dir() else mode)
            else:
                os.chmod(p, mode)
        old = sorted(p.name for p in outdir.iterdir() if self.is_owned(p.name) and not p.name.startswith("."))
        moved_old: list[str] = []
        moved_new: list[str] = []
        committed = False
        try:
            old_dir.mkdir()
            _write_journal(staging, "prepared", old, new)
            for name in old:
                os.replace(outdir / name, old_dir / name)
                moved_old.append(name)
            _write_journal(staging, "committed", old, new)
            committed = True
            for name in new:
                os.replace(new_dir / name, outdir / name)
                moved_new.append(name)
            _fsync_dir(outdir)
        except Exception as err:
            try:
                for name in reversed(moved_new):
                    os.replace(outdir / name, new_dir / name)
                if committed:
                    _write_journal(staging, "prepared", old, new)
                for name in reversed(moved_old):
                    os.replace(old_dir / name, outdir / name)
            except Exception:
                self._release()
                self.staging = None  # keep it: the next run finishes the swap from its journal
                raise UserError(f"{outdir}: writing outputs failed ({_reason(err)}); the swap is left in "
                                f"{staging.name} and the next run into this folder completes it") from None
            self._discard()
            raise UserError(f"{outdir}: writing outputs failed ({_reason(err)}); the earlier outputs are kept") from None
        self.files = {name: outdir / name for name in new}
        self._discard()
        return self.files


def _reason(err: BaseException) -> str:
    return (err.strerror if isinstance(err, OSError) and err.strerror else None) or str(err) or type(err).__name__
