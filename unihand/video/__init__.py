"""Video estimation: decoding, MediaPipe detection, hand tracking and the estimate pipeline.

``estimate_video(path, outdir)`` is the whole path; the pieces are importable on their own:
:func:`open_video` (streaming decode), :class:`HandDetector`, :func:`track_hands`. The names are
imported on first use, so importing one module of this package does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "VideoInfo": "decode", "VideoSource": "decode", "open_video": "decode",
    "Detection": "detect", "HandDetector": "detect",
    "EstimateResult": "estimate", "EstimateSettings": "estimate", "HandResult": "estimate", "estimate_video": "estimate",
    "resolve_intrinsics": "intrinsics",
    "HandTrack": "track", "track_hands": "track",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"unihand.video.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'unihand.video' has no attribute {name!r}")
