"""Video estimation: decoding, MediaPipe detection, hand tracking and the estimate pipeline.

``estimate_video(path, outdir)`` is the whole path; the pieces are importable on their own:
:func:`open_video` (streaming decode), :class:`HandDetector`, :func:`track_hands`.
"""

from unihand.video.decode import VideoInfo, VideoSource, open_video
from unihand.video.detect import Detection, HandDetector
from unihand.video.estimate import EstimateResult, EstimateSettings, HandResult, estimate_video
from unihand.video.intrinsics import resolve_intrinsics
from unihand.video.track import HandTrack, track_hands

__all__ = [
    "Detection",
    "EstimateResult",
    "EstimateSettings",
    "HandDetector",
    "HandResult",
    "HandTrack",
    "VideoInfo",
    "VideoSource",
    "estimate_video",
    "open_video",
    "resolve_intrinsics",
    "track_hands",
]
