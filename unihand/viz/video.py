"""Writing videos: RGB frames -> H.264 (yuv420p, faststart) MP4 through the ffmpeg that imageio-ffmpeg
bundles (OpenCV's writers cannot encode H.264 here). The one video writer of the project: overlays,
the synthetic dataset's frames, the demo's input video."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unihand.files import atomic_write


class H264Writer:
    """Stream RGB frames into an H.264 (yuv420p, faststart) MP4 through imageio-ffmpeg.

    ``threads=1`` (the default) writes the same bytes on every machine: x264's output depends on its
    thread count, which ffmpeg otherwise picks from the CPU count (``None``), so a video rendered as an
    input (the demo's, the synthetic dataset's) would differ from one machine to the next."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, crf: int = 23,
                 threads: int | None = 1) -> None:
        import imageio_ffmpeg

        self.size = size
        self._gen = imageio_ffmpeg.write_frames(
            str(path), size, fps=float(fps), codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=2, ffmpeg_log_level="error",
            output_params=["-crf", str(crf), "-preset", "veryfast", "-movflags", "+faststart",
                           *([] if threads is None else ["-threads", str(threads)])],
        )
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        self._gen.send(np.ascontiguousarray(frame, dtype=np.uint8))

    def close(self) -> None:
        self._gen.close()


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Atomically write (N, H, W, 3) uint8 RGB frames as an H.264 MP4."""
    h, w = frames.shape[1:3]

    def write(tmp: str) -> None:
        writer = H264Writer(tmp, (w, h), fps, crf=crf)
        for f in frames:
            writer.write(f)
        writer.close()

    return atomic_write(path, write, suffix=".mp4")
