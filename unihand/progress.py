"""Progress of the long commands, on stderr: a bar (tqdm) when stderr is a terminal, else one summary
line when the work is done (a log file gets no carriage-return lines)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """``with Progress(total, "detect", "frame") as bar: ... bar.update()``.

    ``enabled``: ``None`` (the default) shows a bar on a terminal and one summary line otherwise
    (``summary=False``: nothing, for a command that prints its own), ``True`` always a bar, ``False``
    nothing.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "frame", enabled: bool | None = None,
                 summary: bool = True) -> None:
        tty = sys.stderr.isatty()
        self.desc, self.unit, self.count = desc, unit, 0
        self.summary = summary and enabled is None and not tty
        self.bar: Any = None
        if enabled or (enabled is None and tty):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total or None, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr)
        self.t0 = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.summary and self.count:
            took = time.perf_counter() - self.t0
            print(f"{self.desc}: {self.count} {self.unit}{'s' if self.count != 1 else ''} in {took:.1f} s",
                  file=sys.stderr, flush=True)
            self.summary = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:  # no summary of work that did not finish
            self.summary = False
        self.close()
