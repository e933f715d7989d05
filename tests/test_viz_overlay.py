"""Overlay video: H.264 MP4 through imageio-ffmpeg, keypoints and infilled frames drawn, atomic."""

import imageio_ffmpeg
import numpy as np
import pytest

from unihand.viz.overlay import INFILL_COLOR, OverlayTrack, output_size, render_overlays

N, W, H = 12, 320, 240


def _track(infilled_frames=(4, 5)) -> OverlayTrack:
    rng = np.random.default_rng(0)
    base = np.array([160.0, 120.0]) + rng.uniform(-40, 40, size=(21, 2))
    j2d = np.repeat(base[None], N, axis=0) + np.arange(N)[:, None, None]
    kp = j2d + 2.0
    infilled = np.zeros(N, bool)
    infilled[list(infilled_frames)] = True
    kp[infilled] = np.nan
    mask = np.isfinite(kp[..., 0])
    mask[:, 8] = False  # one low-confidence joint
    return OverlayTrack(joints_2d=j2d, detected_kp=kp, kp_mask=mask, infilled=infilled, label="right")


def _frames():
    return (np.full((H, W, 3), 90, np.uint8) for _ in range(N))


def _read(path):
    """ffmpeg's metadata of the file and its frames (through the project's decoder)."""
    from unihand.video.decode import open_video, read_all

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    gen.close()
    return meta, list(read_all(open_video(path)))


def test_writes_h264_with_every_frame(tmp_path) -> None:
    out = tmp_path / "o.mp4"
    ticks = []
    render_overlays(_frames(), {out: _track()}, fps=30, frame_offset=100, progress=lambda: ticks.append(1))
    meta, frames = _read(out)
    assert meta["codec"] == "h264" and meta["size"] == (W, H) and meta["fps"] == pytest.approx(30)
    assert len(frames) == N and len(ticks) == N
    # the skeleton and keypoints were drawn (colour where the background was flat grey)
    assert np.abs(frames[0].astype(int) - 90).max() > 100
    # infilled frames get a red border, the others do not
    red = np.array(INFILL_COLOR)

    def border_is_red(f):
        return np.abs(f[H // 2, 1].astype(int) - red).max() < 60

    assert border_is_red(frames[4]) and border_is_red(frames[5])
    assert not border_is_red(frames[0]) and not border_is_red(frames[8])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_overlays_one_pass_and_downscale(tmp_path) -> None:
    big = (np.full((722, 1282, 3), 50, np.uint8) for _ in range(3))
    t = _track(())
    t2 = OverlayTrack(joints_2d=t.joints_2d[:3] * 4, label="left")
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    render_overlays(big, {a: OverlayTrack(joints_2d=t.joints_2d[:3] * 4), b: t2}, fps=25, max_side=640)
    for p in (a, b):
        meta, frames = _read(p)
        assert meta["size"] == (640, 360) and len(frames) == 3
    assert output_size(1282, 722, 640) == (640, 360, pytest.approx(640 / 1282))
    w, h, _ = output_size(101, 51)  # yuv420p needs even sizes
    assert w % 2 == 0 and h % 2 == 0 and abs(w - 101) <= 1 and abs(h - 51) <= 1


def test_failure_leaves_nothing(tmp_path) -> None:
    def frames():
        yield np.zeros((H, W, 3), np.uint8)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError, match="decoder died"):
        render_overlays(frames(), {tmp_path / "o.mp4": _track()}, fps=30)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no frame"):
        render_overlays(iter([]), {tmp_path / "o.mp4": _track()}, fps=30)
    assert list(tmp_path.iterdir()) == []
