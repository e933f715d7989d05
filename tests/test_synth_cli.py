"""``unihand synth``: files, formats, preview, and reading the set back."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from unihand.cli import main
from unihand.data.io import Conditions, Motion, load_npz
from unihand.data.synthetic import SynthConfig, SyntheticWorld
from unihand.data.windows import SynthDirWindows, SyntheticWindows


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("synth")
    code = main(["synth", "--out", str(d), "--num", "3", "--frames", "16", "--size", "64", "--preview", "--lossless",
                 "--seed", "1000"])
    assert code == 0
    return d


def test_writes_every_file(out: Path) -> None:
    meta = json.loads((out / "synth.json").read_text())
    assert meta["seed"] == 1000 and meta["num"] == 3 and meta["size"] == 64
    for k in range(3):
        d = out / f"seq_{k:05d}"
        for name in ("motion.npz", "conditions.npz", "frames.mp4", "frames.npz"):
            assert (d / name).stat().st_size > 0, name
    assert not list(out.rglob(".*"))  # no temp files left behind


def test_files_load_and_match_the_world(out: Path) -> None:
    seq = SyntheticWorld(1000, SynthConfig(frames=16)).sequence(2)
    m = Motion.load(out / "seq_00002" / "motion.npz", require_joints=True)
    c = Conditions.load(out / "seq_00002" / "conditions.npz")
    assert m.num_frames == 16 and m.is_right == seq.is_right and m.fps == 30.0
    np.testing.assert_array_equal(m.hand_pose, seq.motion.hand_pose)
    np.testing.assert_array_equal(m.joints_2d, seq.motion.joints_2d)
    assert m.extra["T_cano_from_cam"].shape == (16, 4, 4) and m.K.shape == (3, 3)
    np.testing.assert_array_equal(c.kp2d, seq.conditions.kp2d)
    np.testing.assert_array_equal(c.kp2d_mask, seq.conditions.kp2d_mask)
    assert c.mano.shape == (16, 61) and c.extra["occlusion"].shape == (16,)
    frames = load_npz(out / "seq_00002" / "frames.npz")["frames"]
    np.testing.assert_array_equal(frames, seq.render(64))


def test_mp4_is_h264_and_close_to_the_frames(out: Path) -> None:
    import imageio_ffmpeg

    from unihand.video.decode import open_video, read_all

    d = out / "seq_00000"
    video = read_all(open_video(d / "frames.mp4"))
    exact = load_npz(d / "frames.npz")["frames"]
    assert video.shape == exact.shape == (16, 64, 64, 3)
    assert np.abs(video.astype(float) - exact).mean() < 12  # lossy, but the same pictures
    gen = imageio_ffmpeg.read_frames(str(d / "frames.mp4"))
    meta = next(gen)
    gen.close()
    assert "h264" in str(meta.get("codec", "")).lower()


def test_preview_is_a_valid_png_contact_sheet(out: Path) -> None:
    data = (out / "preview.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(out / "preview.png"))
    assert img is not None and img.ndim == 3
    assert img.shape[0] > 3 * 64 and img.shape[1] > 6 * 64  # 3 rows of 1 + up to 6 tiles
    # the keypoint colours are on it: observed (green) dots
    assert ((img[..., 1] > 200) & (img[..., 0] < 100) & (img[..., 2] < 100)).sum() > 20


def test_directory_dataset_reads_the_set(out: Path) -> None:
    ds = SynthDirWindows(out, render=True)
    assert len(ds) == 3
    item = ds[1]
    ref = SyntheticWindows(3, seed=1000, frames=16)[1]
    for k in ref:
        assert torch.equal(item[k], ref[k]), k
    assert item["frames"].shape == (16, 3, 64, 64)
    short = SynthDirWindows(out, frames=8, stride=4)
    assert len(short) == 3 * 3  # starts 0, 4, 8 in each 16-frame sequence
    assert short[4]["mano"].shape == (8, 61)
    torch.testing.assert_close(short[4]["mano"], ref["mano"][4:12])


def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["synth", "--out", str(tmp_path / "x"), "--size", "33"]) == 2
    err = capsys.readouterr().err
    assert "--size" in err and err.count("\n") == 1
    assert main(["synth", "--out", str(tmp_path / "x"), "--num", "0"]) == 2
    with pytest.raises(Exception):
        SynthDirWindows(tmp_path)


def test_without_render_writes_no_frames(tmp_path: Path) -> None:
    assert main(["synth", "--out", str(tmp_path), "--num", "2", "--frames", "8"]) == 0
    assert (tmp_path / "seq_00001" / "conditions.npz").exists()
    assert not list(tmp_path.rglob("frames.*")) and not (tmp_path / "preview.png").exists()
