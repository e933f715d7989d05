"""Streaming video decoding: H.264/HEVC/VP9/AV1 files through OpenCV (ffmpeg backend),
imageio-ffmpeg as a fallback for anything OpenCV cannot open, and folders of images.

Frames are yielded one at a time or in chunks of a fixed size, so memory stays bounded
whatever the length of the video. A file that is not a video, holds no frames or ends
well before the frame count its container declares raises a one-line :class:`UserError`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unihand.errors import UserError

# OpenCV's ffmpeg backend prints decoder complaints to stderr; our own errors say what went wrong.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

#: Frame rate assumed for a folder of images, or a video whose container gives none.
DEFAULT_FPS = 30.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Frames a decoder may fall short of the container's declared count before we call it truncated
#: (containers without an index, e.g. webm, estimate their count from duration x fps).
_SHORTFALL_TOLERANCE = 0.02


@dataclass(frozen=True)
class VideoInfo:
    """What was opened and which frames of it are read."""

    path: Path
    kind: str  # "video" or "images"
    width: int
    height: int
    fps: float
    total_frames: int  # frames in the whole file/folder (container count; 0 if unknown)
    start: int  # first frame read (index into the whole file)
    end: int  # one past the last frame read; total_frames or the requested end

    @property
    def num_frames(self) -> int:
        """Frames in the selected range (as declared by the container)."""
        return max(0, self.end - self.start)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.width, self.height


def parse_time(value: str | float | int | None, fps: float, name: str = "time") -> int | None:
    """A frame index from ``'12.5'`` (seconds), ``'48f'`` (frames) or a number of seconds."""
    if value is None:
        return None
    text = str(value).strip().lower()
    m = re.fullmatch(r"(\d+)f", text)
    if m:
        return int(m.group(1))
    try:
        sec = float(text)
    except ValueError:
        raise UserError(f"--{name} {value!r}: expected seconds (e.g. 2.5) or a frame number (e.g. 75f)") from None
    if not math.isfinite(sec) or sec < 0:
        raise UserError(f"--{name} {value!r}: expected a non-negative time")
    return int(round(sec * fps))


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name.lower())]


class VideoSource:
    """A video file or image folder opened for streaming reads of frames [start, end).

    Frames are RGB ``uint8`` arrays of shape (H, W, 3). Iterating twice re-opens the file,
    so a second pass (e.g. for rendering an overlay) costs no memory.
    """

    def __init__(
        self, path: str | Path, start: str | float | int | None = None, end: str | float | int | None = None,
        fps: float | None = None,
    ) -> None:
        self.path = Path(path)
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise UserError(f"--fps {fps}: expected a positive frame rate")
        if not self.path.exists():
            raise UserError(f"{self.path}: no such file or folder")
        if self.path.is_dir():
            self._files = sorted(
                (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
            )
            if not self._files:
                raise UserError(f"{self.path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            first = self._read_image(self._files[0])
            kind, w, h, total = "images", first.shape[1], first.shape[0], len(self._files)
            src_fps = fps or DEFAULT_FPS
            self._backend = "images"
        else:
            self._files = []
            kind = "video"
            w, h, src_fps, total, self._backend = self._probe(self.path)
            src_fps = fps or src_fps
        s = parse_time(start, src_fps, "start") or 0
        e = parse_time(end, src_fps, "end")
        if total > 0:
            e = total if e is None else min(e, total)
        if e is not None and e <= s:
            raise UserError(
                f"{self.path}: the selected range [{s}, {e}) holds no frames"
                + (f" (the video has {total} frames at {src_fps:g} fps)" if total else "")
            )
        self.info = VideoInfo(self.path, kind, int(w), int(h), float(src_fps), int(total), int(s), int(e or 0))
        self._unknown_end = e is None  # container did not say how many frames it holds

    # -- probing ---------------------------------------------------------------------------------
    @staticmethod
    def _probe(path: Path) -> tuple[int, int, float, int, str]:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            if cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_WIDTH) > 0:
                w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
                h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
                total = int(max(0, cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
                # Orientation metadata (phone videos) is applied by OpenCV: report the shape it yields.
                ok, frame = cap.read()
                if not ok or frame is None:
                    raise UserError(f"{path}: the video holds no decodable frames")
                h, w = frame.shape[:2]
                return w, h, fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS, total, "cv2"
        finally:
            cap.release()
        # OpenCV could not open it: ask ffmpeg (covers rarer containers and codecs). A file ffmpeg cannot
        # decode is turned down by a plain run first: imageio-ffmpeg leaves its pipes open when it fails.
        import subprocess

        import imageio_ffmpeg

        check = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1",
                                "-f", "null", "-"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if check.returncode != 0:
            msg = check.stderr.strip().splitlines()
            raise UserError(f"{path}: not a readable video or image folder ({(msg[-1] if msg else 'ffmpeg failed')[:160]})")
        try:
            gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
            meta = next(gen)
            try:
                first = next(gen, None)
            finally:
                gen.close()
        except (RuntimeError, OSError, StopIteration) as err:
            msg = str(err).strip().splitlines()
            detail = msg[-1] if msg else err.__class__.__name__
            raise UserError(f"{path}: not a readable video or image folder ({detail[:160]})") from None
        if first is None:
            raise UserError(f"{path}: the video holds no decodable frames")
        w, h = meta["size"]
        fps = float(meta.get("fps") or 0)
        fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
        dur = float(meta.get("duration") or 0)
        total = int(round(dur * fps)) if math.isfinite(dur) and dur > 0 else 0
        return int(w), int(h), fps, total, "ffmpeg"

    # -- reading ---------------------------------------------------------------------------------
    def _read_image(self, path: Path) -> np.ndarray:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise UserError(f"{path}: not a readable image")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _iter_images(self) -> Iterator[np.ndarray]:
        w, h = self.info.image_size
        for p in self._files[self.info.start : self.info.end]:
            img = self._read_image(p)
            if img.shape[:2] != (h, w):
                raise UserError(f"{p}: image is {img.shape[1]}x{img.shape[0]}, the folder's first is {w}x{h}")
            yield img

    def _iter_cv2(self) -> Iterator[np.ndarray]:
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            start = self.info.start
            if start > 0:
                cap.set(cv2.CAP_PROP_POS_FRAMES, start)
                if int(round(cap.get(cv2.CAP_PROP_POS_FRAMES))) != start:  # inexact seek: decode forward
                    cap.release()
                    cap = cv2.VideoCapture(str(self.path))
                    for _ in range(start):
                        if not cap.grab():
                            return
            n = None if self._unknown_end else self.info.num_frames
            i = 0
            while n is None or i < n:
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                i += 1
        finally:
            cap.release()

    def _iter_ffmpeg(self) -> Iterator[np.ndarray]:
        import imageio_ffmpeg

        w, h = self.info.image_size
        input_params = ["-ss", f"{self.info.start / self.info.fps:.6f}"] if self.info.start else []
        gen = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24", input_params=input_params)
        try:
            next(gen)
            n = None if self._unknown_end else self.info.num_frames
            i = 0
            for buf in gen:
                if n is not None and i >= n:
                    break
                yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
                i += 1
        except RuntimeError as err:
            raise UserError(f"{self.path}: decoding failed ({str(err).strip().splitlines()[-1][:160]})") from None
        finally:
            gen.close()

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(i, frame)`` for i = 0.. over the selected range (i is relative to ``start``).

        Raises :class:`UserError` if the stream ends clearly before the declared frame count
        (a truncated or corrupt file) or yields no frame at all.
        """
        it = {"images": self._iter_images, "cv2": self._iter_cv2, "ffmpeg": self._iter_ffmpeg}[self._backend]()
        count = 0
        for count, frame in enumerate(it, start=1):
            yield count - 1, frame
        if count == 0:
            raise UserError(f"{self.path}: no frame could be decoded in the selected range")
        expected = 0 if self._unknown_end else self.info.num_frames
        if expected and count < expected - max(2, int(_SHORTFALL_TOLERANCE * expected)):
            raise UserError(
                f"{self.path}: decoding stopped at frame {self.info.start + count} of the "
                f"{self.info.end} the file declares: the video is truncated or corrupt"
            )

    def chunks(self, size: int = 64) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_index, frames (n, H, W, 3))`` chunks of at most ``size`` frames."""
        buf: list[np.ndarray] = []
        first = 0
        for i, frame in self.frames():
            if not buf:
                first = i
            buf.append(frame)
            if len(buf) == size:
                yield first, np.stack(buf)
                buf = []
        if buf:
            yield first, np.stack(buf)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (f for _, f in self.frames())

    def __repr__(self) -> str:
        i = self.info
        return f"VideoSource({str(i.path)!r}, {i.width}x{i.height}, {i.fps:g} fps, frames {i.start}..{i.end})"


def open_video(
    path: str | Path, start: str | float | int | None = None, end: str | float | int | None = None,
    fps: float | None = None,
) -> VideoSource:
    """Open a video file or a folder of images for streaming reads of frames [start, end).

    ``start``/``end`` are seconds (``2.5``) or frame numbers (``'75f'``); ``fps`` overrides the
    container's rate (needed for image folders, which default to :data:`DEFAULT_FPS`).
    """
    return VideoSource(path, start=start, end=end, fps=fps)


def read_all(source: VideoSource) -> np.ndarray:
    """All selected frames as one (N, H, W, 3) array: for short clips and tests only."""
    return np.stack(list(source))
