"""Video estimation: decoding, MediaPipe detection, hand tracking and the estimate pipeline.

``estimate_video(path, outdir)`` is the whole path; the pieces are importable on their own:
:func:`open_video` (streaming decode), :class:`HandDetector`, :func:`track_hands`.
"""

from unihand.video.decode import VideoInfo, VideoSource, open_video
from unihand.video.detect import Detection, HandDetector
from unihand.video.estimate import DEFAULT_FOV_DEG, EstimateResult, HandResult, estimate_video, resolve_intrinsics
from unihand.video.track import HandTrack, track_hands

__all__ = [
    "DEFAULT_FOV_DEG",
    "Detection",
    "EstimateResult",
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
