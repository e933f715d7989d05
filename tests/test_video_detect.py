"""MediaPipe detection on the real sample video: offline models, corrected handedness, confidences."""

from pathlib import Path

import numpy as np
import pytest

from unihand.video.decode import open_video, read_all

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "right_hand_office.mp4"
pytest.importorskip("mediapipe")
pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason="sample video not available")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return read_all(open_video(SAMPLE, start="100f", end="112f"))


def _run(frames, **kw):
    from unihand.video.detect import HandDetector

    with HandDetector(**kw) as det:
        return [det(f) for f in frames]


def test_right_hand_found_and_label_corrected(frames) -> None:
    # MediaPipe labels this (non-mirrored) right hand "Left"; the detector must say right.
    out = _run(frames)
    found = [d for d in out if d]
    assert len(found) >= len(frames) - 1
    for dets in found:
        assert len(dets) == 1
        d = dets[0]
        assert d.is_right and d.right_prob > 0.7
        assert d.keypoints.shape == (21, 2) and d.confidence.shape == (21,)
        h, w = frames.shape[1:3]
        assert (d.keypoints >= -1).all() and (d.keypoints[:, 0] < w).all() and (d.keypoints[:, 1] < h).all()
        assert 100 < d.scale < 800  # the hand is a few hundred pixels tall
        # OpenPose order: the wrist (0) is the lowest joint here (fingers up), the tips well above it
        assert d.keypoints[0, 1] == d.keypoints[:, 1].max()
        assert d.keypoints[[4, 8, 12, 16, 20], 1].min() < d.keypoints[0, 1] - 100


def test_mirrored_video_gives_left_and_selfie_flag_keeps_label(frames) -> None:
    flipped = np.ascontiguousarray(frames[:4, :, ::-1])
    out = _run(flipped)
    assert all(d and not d[0].is_right for d in out)
    # a selfie video: MediaPipe's own label is right; with mirrored=True it is kept as is
    out = _run(flipped, mirrored=True)
    assert all(d and d[0].is_right for d in out)


def test_reduced_resolution_keeps_accuracy(frames) -> None:
    full = _run(frames[:6])
    half = _run(frames[:6], scale=0.5)
    diffs = [np.linalg.norm(a[0].keypoints - b[0].keypoints, axis=-1) for a, b in zip(full, half) if a and b]
    assert diffs
    assert np.median(np.concatenate(diffs)) < 3.0  # pixels of the 1280x720 frame


def test_blank_frames_have_no_hand() -> None:
    out = _run(np.zeros((3, 120, 160, 3), np.uint8))
    assert out == [[], [], []]
