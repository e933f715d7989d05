"""Hand tracking: one identity per hand, no duplicates, no left/right swaps, gaps survived."""

import numpy as np

from unihand.video.detect import Detection, outside_confidence
from unihand.video.track import suppress_duplicates, track_hands

RNG = np.random.default_rng(0)
TEMPLATE = RNG.uniform(-60, 60, size=(21, 2))  # a "hand" of ~170 px


def det(center, right_prob, noise=1.0, template=TEMPLATE) -> Detection:
    kp = np.asarray(center, float) + template + RNG.normal(0, noise, (21, 2))
    return Detection(kp.astype(np.float32), np.ones(21, np.float32), right_prob, 0.9)


def path(n, start, end):
    return np.linspace(start, end, n)


def test_single_hand_one_track_labels_corrected_by_majority() -> None:
    n = 40
    centers = path(n, (300, 300), (500, 320))
    probs = np.full(n, 0.9)
    probs[[5, 17, 30]] = 0.1  # MediaPipe flips its label on a few frames
    tracks = track_hands([[det(c, p)] for c, p in zip(centers, probs)])
    assert list(tracks) == ["right"]
    tr = tracks["right"]
    assert tr.detected.all() and tr.num_detected == n
    assert len(tr.tracklets) == 1
    np.testing.assert_allclose(np.nanmean(tr.keypoints, axis=1), centers + TEMPLATE.mean(0), atol=2)


def test_two_hands_crossing_do_not_swap() -> None:
    n = 60
    right = path(n, (200, 300), (700, 300))
    left = path(n, (700, 340), (200, 340))  # they cross in the middle
    other = TEMPLATE[::-1] * 0.9  # a different-looking hand
    frames = []
    for t in range(n):
        pr, pl = 0.85, 0.15
        if 25 <= t <= 35:  # labels unreliable while they overlap
            pr, pl = 0.4, 0.6
        frames.append([det(left[t], pl, template=other), det(right[t], pr)])
    tracks = track_hands(frames)
    assert set(tracks) == {"right", "left"}
    np.testing.assert_allclose(np.nanmean(tracks["right"].keypoints, 1), right + TEMPLATE.mean(0), atol=3)
    np.testing.assert_allclose(np.nanmean(tracks["left"].keypoints, 1), left + other.mean(0), atol=3)


def test_duplicates_removed() -> None:
    d = det((300, 300), 0.9)
    dup = Detection(d.keypoints + 3, d.confidence * 0.9, 0.9, 0.8)
    far = det((900, 300), 0.1)
    kept = suppress_duplicates([dup, d, far])
    assert len(kept) == 2 and kept[0] is d
    # a frame with the same hand twice gives one right track, no left duplicate
    frames = [[det((300 + t, 300), 0.9), det((302 + t, 301), 0.9)] for t in range(20)]
    tracks = track_hands(frames)
    assert list(tracks) == ["right"] and tracks["right"].detected.all()


def test_gap_survived_same_identity() -> None:
    n = 80
    frames = [[det((300 + 2 * t, 300), 0.8)] if not 20 <= t < 50 else [] for t in range(n)]
    # the hand reappears somewhere else after leaving the image for 30 frames
    for t in range(50, n):
        frames[t] = [det((800, 200 + t), 0.8)]
    tracks = track_hands(frames)
    assert list(tracks) == ["right"]
    tr = tracks["right"]
    assert tr.num_detected == 50
    assert not tr.detected[20:50].any()
    assert np.isnan(tr.keypoints[20:50]).all() and (tr.confidence[20:50] == 0).all()
    assert len(tr.tracklets) == 2


def test_mislabelled_second_hand_goes_to_the_other_side() -> None:
    # both hands labelled right by the detector: the weaker track must become the left hand
    n = 30
    frames = [[det((300, 300 + t), 0.95), det((800, 300), 0.6, template=TEMPLATE * 0.8)] for t in range(n)]
    tracks = track_hands(frames)
    assert set(tracks) == {"right", "left"}
    assert np.nanmean(tracks["left"].keypoints[:, :, 0]) > 700
    assert np.nanmean(tracks["right"].keypoints[:, :, 0]) < 400


def test_spurious_short_detections_dropped_and_sides_filtered() -> None:
    frames = [[det((300, 300), 0.9)] for _ in range(30)]
    frames[10].append(det((900, 600), 0.2))  # a one-frame false positive
    tracks = track_hands(frames)
    assert list(tracks) == ["right"]
    assert track_hands(frames, sides=("left",)) == {}
    assert track_hands([[] for _ in range(10)]) == {}


def test_temporal_glitch_lowers_confidence() -> None:
    n = 20
    frames = [[det((300 + t, 300), 0.9, noise=0.3)] for t in range(n)]
    frames[10][0].keypoints[8] += 90  # index tip jumps away for one frame
    tr = track_hands(frames)["right"]
    assert tr.confidence[10, 8] < 0.5
    assert (tr.confidence[:, [0, 5, 9]] > 0.9).all()
    others = np.delete(tr.confidence, 10, axis=0)
    assert (others > 0.9).all()


def test_outside_confidence() -> None:
    kp = np.array([[10.0, 10.0], [-5.0, 10.0], [-30.0, 10.0], [99.0, 49.0], [140.0, 10.0]])
    conf = outside_confidence(kp, 100, 50, scale=100)
    assert conf[0] == 1 and conf[3] == 1
    assert 0 < conf[1] < 1 and conf[2] == 0 and conf[4] == 0


def test_clips_shorter_than_three_frames_keep_their_hand() -> None:
    for n in (1, 2):
        tracks = track_hands([[det((300, 200), 0.9)] for _ in range(n)])
        assert list(tracks) == ["right"] and tracks["right"].num_detected == n
    # in a longer clip a hand seen on 2 frames only is still spurious
    dets = [[det((300, 200), 0.9)] if t < 2 else [] for t in range(10)]
    assert track_hands(dets) == {}
