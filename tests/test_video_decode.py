"""Video decoding: H.264 mp4, webm, image folders, ranges, chunks and every kind of bad input."""

from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from unihand.errors import UserError
from unihand.video.decode import open_video, parse_time, read_all

W, H, N = 96, 64, 20


def _frames(n: int = N) -> np.ndarray:
    """Frame i is a flat grey of level 10 * i (+ a white square that moves), easy to identify after coding."""
    out = np.zeros((n, H, W, 3), np.uint8)
    for i in range(n):
        out[i] = 10 * i
        out[i, 8:24, 4 + 3 * i : 20 + 3 * i] = 255
    return out


def _write(path: Path, frames: np.ndarray, codec: str, params: list[str] | None = None) -> Path:
    gen = imageio_ffmpeg.write_frames(str(path), (frames.shape[2], frames.shape[1]), fps=25, codec=codec,
                                      macro_block_size=2, ffmpeg_log_level="error", quality=None,
                                      output_params=params or [])
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()
    return path


def _level(frame: np.ndarray) -> float:
    return float(frame[40:, :, :].mean())  # below the moving square


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    fr = _frames()
    out = {
        "mp4": _write(d / "clip.mp4", fr, "libx264", ["-crf", "10", "-movflags", "+faststart"]),
        "mp4_moov_end": _write(d / "clip_end.mp4", fr, "libx264", ["-crf", "10"]),
        "webm": _write(d / "clip.webm", fr, "libvpx-vp9", ["-crf", "10", "-b:v", "0"]),
    }
    folder = d / "images"
    folder.mkdir()
    for i, f in enumerate(fr):  # natural order: 2 before 10
        cv2.imwrite(str(folder / f"img_{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out["folder"] = folder
    return out


@pytest.mark.parametrize("kind", ["mp4", "mp4_moov_end", "webm", "folder"])
def test_decodes_every_frame_in_order(videos, kind) -> None:
    src = open_video(videos[kind])
    assert (src.info.width, src.info.height) == (W, H)
    assert src.info.num_frames == N
    frames = read_all(src)
    assert frames.shape == (N, H, W, 3) and frames.dtype == np.uint8
    levels = [_level(f) for f in frames]
    np.testing.assert_allclose(levels, 10 * np.arange(N), atol=3)


def test_fps_from_container_and_folder_default(videos) -> None:
    assert open_video(videos["mp4"]).info.fps == pytest.approx(25)
    assert open_video(videos["folder"]).info.fps == pytest.approx(30)
    assert open_video(videos["folder"], fps=12).info.fps == pytest.approx(12)


@pytest.mark.parametrize("kind", ["mp4", "webm", "folder"])
def test_start_end_in_frames_and_seconds(videos, kind) -> None:
    src = open_video(videos[kind], start="5f", end="12f")
    levels = [_level(f) for f in src]
    assert len(levels) == 7
    np.testing.assert_allclose(levels, 10 * np.arange(5, 12), atol=3)
    fps = src.info.fps
    src = open_video(videos[kind], start=4 / fps, end=f"{10 / fps}")
    assert [round(_level(f) / 10) for f in src] == list(range(4, 10))
    # end beyond the video is clipped
    assert open_video(videos[kind], start="15f", end="999f").info.num_frames == N - 15


def test_chunks_bounded_and_complete(videos) -> None:
    src = open_video(videos["mp4"])
    chunks = list(src.chunks(6))
    assert [c.shape[0] for _, c in chunks] == [6, 6, 6, 2]
    assert [i for i, _ in chunks] == [0, 6, 12, 18]
    # iterating again re-opens the file (second pass for the overlay)
    assert sum(1 for _ in src) == N


def test_parse_time() -> None:
    assert parse_time("75f", 30) == 75
    assert parse_time("2.5", 30) == 75
    assert parse_time(1, 25) == 25
    assert parse_time(None, 30) is None
    for bad in ("abc", "-1", "nan"):
        with pytest.raises(UserError, match="--start"):
            parse_time(bad, 30, "start")


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_not_a_video(tmp_path) -> None:
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    with pytest.raises(UserError) as err:
        open_video(p)
    assert "not a readable video" in _one_line(err)


def test_empty_file_and_missing_path(tmp_path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UserError) as err:
        open_video(tmp_path / "empty.mp4")
    _one_line(err)
    with pytest.raises(UserError, match="no such file"):
        open_video(tmp_path / "missing.mp4")


@pytest.mark.parametrize("kind", ["mp4", "mp4_moov_end"])
def test_truncated_video(videos, tmp_path, kind) -> None:
    data = videos[kind].read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])
    # moov at the end: cannot be opened at all; moov first: decoding stops early
    with pytest.raises(UserError) as err:
        src = open_video(p)
        for _ in src:
            pass
    msg = _one_line(err)
    assert "truncated" in msg or "not a readable video" in msg


def test_zero_frames(tmp_path, videos) -> None:
    with pytest.raises(UserError, match="holds no frames"):
        open_video(videos["mp4"], start="10f", end="10f")
    with pytest.raises(UserError, match="holds no frames"):
        open_video(videos["mp4"], start="50f")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(UserError, match="no images"):
        open_video(tmp_path / "empty_folder")


def test_folder_with_bad_images(tmp_path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((10, 12, 3), np.uint8))
    cv2.imwrite(str(folder / "b.png"), np.zeros((11, 12, 3), np.uint8))
    with pytest.raises(UserError, match="b.png: image is 12x11"):
        read_all(open_video(folder))
    (folder / "b.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable image"):
        read_all(open_video(folder))


def test_bad_fps(videos) -> None:
    with pytest.raises(UserError, match="--fps"):
        open_video(videos["folder"], fps=0)
