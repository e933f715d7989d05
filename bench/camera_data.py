"""Synthetic moving-camera videos with known poses for the camera benchmark.

``render_video(index, folder)`` renders sequence ``index`` of the test stream :data:`SEED` with
realistic head motion and the 3D room background at the preset's resolution (GoPro-like
1280x720, 90 degree field of view by default), writes it as H.264 (CRF 20) and returns the
video path, the intrinsics of the video's pixels and the sequence (ground truth). Videos are
cached in ``folder`` by (seed, index, preset, frames) and a digest of the sequence.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

#: Test stream of the camera benchmark (disjoint from training seed 0 and the demo's 1000).
SEED = 2000


def make_sequence(index: int, frames: int = 96, preset: str = "gopro", moving: bool = True, seed: int = SEED):
    from unihand.data.synthetic.conditions import ConditionConfig
    from unihand.data.synthetic.world import SynthConfig, SyntheticWorld

    cfg = SynthConfig(
        frames=frames, left_p=0.0, moving_camera_p=1.0 if moving else 0.0, exit_p=0.0, camera=preset,
        head_motion="realistic", background="room", occluder_counts_p=(0.4, 0.4, 0.2),
        conditions=ConditionConfig(gap_counts_p=(0.6, 0.4)),
    )
    return SyntheticWorld(seed=seed, config=cfg).sequence(index)


def render_video(index: int, folder: str | os.PathLike, frames: int = 96, preset: str = "gopro",
                 moving: bool = True, seed: int = SEED):
    """(video path, K (3, 3) of the video's pixels, sequence, to_pixels) for sequence ``index``."""
    from unihand.viz.video import H264Writer

    seq = make_sequence(index, frames, preset, moving, seed)
    w, h = (int(v) for v in seq.camera.image_size)
    size = max(w, h)
    lb = seq.letterbox(size)
    K = lb.crop_K(seq.camera.K)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # the name holds a digest of the sequence, so a changed generator never reads a stale video
    digest = hashlib.sha1(seq.motion.joints.tobytes() + seq.camera.T_cano_from_cam.tobytes()).hexdigest()[:10]
    video = folder / f"cam_{seed}_{index}_{preset}_{frames}{'' if moving else '_static'}_{digest}.mp4"
    if not video.exists():
        rendered = lb.crop(seq.render(size))
        tmp = video.with_suffix(".tmp.mp4")
        writer = H264Writer(tmp, (rendered.shape[2], rendered.shape[1]), seq.motion.fps, crf=20)
        for f in rendered:
            writer.write(f)
        writer.close()
        tmp.replace(video)

    return video, K, seq, lb.normalized_to_crop


class SimulatedDepth:
    """A metric depth model stand-in for the rendered videos: the true depth of the room
    (:func:`unihand.data.synthetic.render.room_depth`, the video's pixels) times a scale error of the whole
    clip (``bias``, e.g. 1.1: 10 % too far), a per-frame log-normal scale jitter (``frame_sigma``) and a
    per-pixel log-normal noise (``pixel_sigma``), like a monocular network's errors."""

    def __init__(self, seq, K, image_size: tuple[int, int], bias: float = 1.0, frame_sigma: float = 0.05,
                 pixel_sigma: float = 0.05, seed: int = 0) -> None:
        self.seq, self.K, self.size = seq, K, image_size
        self.room = seq.room(max(image_size))
        self.bias, self.frame_sigma, self.pixel_sigma = bias, frame_sigma, pixel_sigma
        self.rng = np.random.default_rng(seed)
        self.name = f"simulated (bias {bias:g}, frame {frame_sigma:g}, pixel {pixel_sigma:g})"

    def __call__(self, frame, index: int):
        from unihand.data.synthetic.render import room_depth
        from unihand.geometry.camera import rescale_K

        h, w = frame.shape[:2]  # the frame as kept for the model (downscaled beyond 1920 px)
        K = rescale_K(self.K, w / self.size[0])
        d = room_depth(self.room, K, self.seq.camera.T_cano_from_cam[index], w, h)
        noise = self.frame_sigma * self.rng.normal() + self.pixel_sigma * self.rng.normal(size=d.shape)
        return (d * self.bias * np.exp(noise)).astype(np.float32)
