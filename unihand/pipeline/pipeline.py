"""``UniHandPipeline``: conditions -> motions, composed of stages with one job each.

    conditions ─► condition arrays ─► mirror (left hands) ─► windows of the sampler ─► refinement
    ─► mirror back ─► forward kinematics ─► motions

- the model (:class:`~unihand.models.unihand_model.UniHandModel`) holds the networks;
- the scheduler is a diffusers scheduler built on the model's training schedule, swappable as in
  diffusers: ``pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)``;
- the refiner (:class:`~unihand.refine.Refiner`) makes each sample consistent with every
  observation (``refine=False``: the paper's pure sampling, for ablations);
- ``hand_model(is_right)`` gives the hand model of either side for forward kinematics.

Covers estimation from 2D keypoints, lifting 3D keypoints, infilling and editing (any mix of
modalities with per-frame masks) and unconditional sampling, for any length; ``num_samples``
stochastic samples come from one batched pass per window. A call returns a
:class:`UniHandPipelineOutput` (``.motions``, as diffusers' pipeline outputs);
``save_pretrained`` / ``from_pretrained`` round-trip the model, the scheduler and the refinement
settings; ``.to(device)`` moves the networks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from torch import nn

from unihand.config import typed
from unihand.data.io import Conditions, Motion
from unihand.diffusion.sampling import SCHEDULERS, sample_scheduler
from unihand.errors import UserError
from unihand.files import atomic_write
from unihand.geometry.canonical import check_camera_poses
from unihand.hand import load_hand_model
from unihand.models.unihand_model import CONFIG_NAME, UniHandModel, check_device, resolve_checkpoint
from unihand.pipeline.checks import check_other_hand, check_sampling, check_scale
from unihand.pipeline.conditions import condition_arrays, frame_arrays
from unihand.pipeline.kinematics import to_motion
from unihand.pipeline.mirror import from_right, to_right
from unihand.pipeline.windows import generate_windows
from unihand.refine.objective import RefineConfig
from unihand.refine.refiner import Refiner

log = logging.getLogger("unihand")

#: ``save_pretrained`` layout beside the model's config.json + model.safetensors (diffusers' names).
SCHEDULER_FOLDER, SCHEDULER_CONFIG = "scheduler", "scheduler_config.json"
REFINE_KEY = "refine"  # the refinement settings, in the model's config.json


@dataclass
class UniHandPipelineOutput(BaseOutput):
    """What a :class:`UniHandPipeline` call returns: ``motions``, one :class:`~unihand.data.io.Motion` per
    sample. Like diffusers' outputs: ``out.motions``, ``out["motions"]``, ``out[0]``, ``out.to_tuple()``."""

    motions: list[Motion]


def make_scheduler(model: UniHandModel, scheduler: str | SchedulerMixin = "ddim") -> SchedulerMixin:
    """A scheduler object, or one by name (:data:`~unihand.diffusion.sampling.SCHEDULERS`) on the model's schedule."""
    if isinstance(scheduler, SchedulerMixin):
        return scheduler
    if scheduler not in SCHEDULERS:
        raise UserError(f"scheduler={scheduler!r}: choose from {', '.join(SCHEDULERS)}")
    return sample_scheduler(model.cfg.diffusion, scheduler)


class UniHandPipeline:
    """Model + scheduler + hand model + refiner (see the module doc)."""

    def __init__(
        self, model: UniHandModel, scheduler: str | SchedulerMixin = "ddim",
        hand_model: Callable[[bool], nn.Module] | None = None, refiner: Refiner | None = None,
    ) -> None:
        self.model = model
        self.scheduler = make_scheduler(model, scheduler)
        self.hand_model = hand_model or partial(_hand, model.mano_dir)
        self.refiner = refiner or Refiner(self.hand_model(True))

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, *, device: str | torch.device = "cpu", mano_dir: str | None = None,
        backbone_path: str | None = None, quantize: str | None = None, scheduler: str | SchedulerMixin | None = None,
        refine_config: RefineConfig | None = None,
    ) -> "UniHandPipeline":
        """The pipeline of a checkpoint (``None``: the shipped small model; see :meth:`UniHandModel.from_pretrained`).

        A folder written by :meth:`save_pretrained` brings its scheduler and refinement settings back;
        ``scheduler`` (a name of :data:`~unihand.diffusion.sampling.SCHEDULERS` or a diffusers scheduler) and
        ``refine_config`` replace them (default otherwise: DDIM and :class:`RefineConfig`'s defaults)."""
        model = UniHandModel.from_pretrained(path, device=device, mano_dir=mano_dir, backbone_path=backbone_path,
                                             quantize=quantize)
        folder = resolve_checkpoint(path)
        if scheduler is None:
            scheduler = _saved_scheduler(folder / SCHEDULER_FOLDER, model) or "ddim"
        if refine_config is None and REFINE_KEY in model.meta:
            refine_config = typed(RefineConfig, model.meta[REFINE_KEY], f"{folder / CONFIG_NAME}: {REFINE_KEY}")
        hand = partial(_hand, mano_dir)
        return cls(model, scheduler, hand, Refiner(hand(True), refine_config))

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the pipeline as a folder ``from_pretrained`` reads: the model (``config.json`` +
        ``model.safetensors``, with the refinement settings in the config) and ``scheduler/``."""
        path = Path(path)
        kept = {k: v for k, v in self.model.meta.items() if k not in ("format_version", "stage", "model")}
        self.model.save_pretrained(path, extra={**kept, REFINE_KEY: dataclasses.asdict(self.refiner.config)})
        folder = path / SCHEDULER_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / SCHEDULER_CONFIG, lambda tmp: Path(tmp).write_text(self.scheduler.to_json_string()))
        return path

    def to(self, device: str | torch.device) -> "UniHandPipeline":
        """Move the networks to ``device`` (the refinement runs on the CPU in float64 either way); returns self."""
        self.model.to(check_device(device))
        return self

    @property
    def device(self) -> torch.device:
        """Where the networks are."""
        return self.model.denoiser.latent_scale.device

    @torch.no_grad()
    def __call__(
        self,
        conditions: Conditions | None = None,
        *,
        num_samples: int = 1,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        num_frames: int | None = None,
        first_frame: np.ndarray | None = None,
        window: int | None = None,
        overlap: int = 16,
        frames: np.ndarray | None = None,
        vision_mask: np.ndarray | None = None,
        refine: bool = True,
        camera_poses: np.ndarray | None = None,
        camera_scale: float | str = 1.0,
        other_hand: np.ndarray | None = None,
        progress: bool | None = False,
        return_dict: bool = True,
    ) -> UniHandPipelineOutput | tuple[list[Motion]]:
        """``num_samples`` motions for ``conditions`` (None: unconditional, ``num_frames`` long).

        ``num_inference_steps`` / ``guidance_scale``: the checkpoint's (10, 2) unless given;
        ``generator``: a CPU ``torch.Generator`` (default: seed 0), the same samples on any device.
        ``first_frame`` (61,): a known MANO first frame (the decoder's anchor). ``frames`` (N, H, W, 3)
        uint8 full video frames for vision checkpoints, ``vision_mask`` (N,) the frames to use.
        ``camera_poses`` (N, 4, 4) T_cano_from_cam of a moving camera, translations in metres times
        ``camera_scale`` or up to scale (``"fit"``: fitted to the hands by the refiner); each motion's
        ``extra["T_cano_from_cam"]`` holds them in metres. ``other_hand`` (N, 21, 3): the other hand of the
        same person in the same canonical frame (NaN where unknown); where this hand is unobserved the
        refinement keeps it off that hand and within reach of it. ``progress``: a bar over the windows
        (None: on a terminal, else one summary line on stderr). Returns a :class:`UniHandPipelineOutput`
        (``return_dict=False``: the tuple ``(motions,)``).
        """
        model = self.model
        check_sampling(model, num_inference_steps, guidance_scale, 0, num_frames, window, overlap, num_samples)
        cond = conditions if conditions is not None else Conditions()
        total = cond.num_frames if cond.modalities() else len(frames) if frames is not None else (
            model.cfg.frames if num_frames is None else num_frames)
        if total <= 0:
            raise UserError("the conditions hold an empty sequence (0 frames)")
        if not cond.modalities():
            log.info("no conditions given: sampling unconditionally (%d frames)", total)
        arrays = condition_arrays(cond, total)
        if cond.modalities() and not any(a.any() for k, a in arrays.items() if k.endswith("_mask")):
            log.warning("every condition mask is off: sampling unconditionally")
        if first_frame is not None:
            first_frame = np.asarray(first_frame, dtype=np.float32).reshape(61)
            if not np.all(np.isfinite(first_frame)):
                raise UserError("first_frame holds NaN or infinite values")
        if frames is not None:
            if not model.cfg.vision.enabled:
                raise UserError("this checkpoint was trained without the vision condition; drop the frames "
                                "or use a vision-enabled checkpoint")
            arrays.update(frame_arrays(frames, vision_mask, total, mirror=not cond.is_right))
        if camera_poses is not None:
            camera_poses = check_camera_poses(camera_poses, total)
        scale = 1.0 if camera_scale == "fit" else check_scale(camera_scale)
        if other_hand is not None:
            arrays["other_hand"] = check_other_hand(other_hand, total)
        arrays, first_frame, camera_poses = to_right(cond.is_right, arrays, first_frame, camera_poses)
        samples = generate_windows(model, self.scheduler, arrays, total, num_samples=num_samples,
                                   steps=num_inference_steps, cfg_scale=guidance_scale, generator=generator,
                                   first_frame=first_frame, window=window, overlap=overlap, progress=progress)
        hand = self.hand_model(cond.is_right)
        motions = []
        for mano in samples:
            if refine:
                mano = self.refiner(mano, arrays, cond.fps, camera_poses, camera_scale)
                scale = self.refiner.camera_scale
            motions.append(to_motion(from_right(cond.is_right, mano), cond, hand, camera_poses, scale))
        return UniHandPipelineOutput(motions=motions) if return_dict else (motions,)


def _saved_scheduler(folder: Path, model: UniHandModel) -> SchedulerMixin | None:
    """The scheduler ``save_pretrained`` wrote into ``folder`` (one of ours, by its class), else None."""
    file = folder / SCHEDULER_CONFIG
    if not file.exists():
        return None
    import diffusers

    try:
        config = json.loads(file.read_text())
        name = config["_class_name"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise UserError(f"{file}: unreadable scheduler config ({err})") from None
    known = {type(sample_scheduler(model.cfg.diffusion, kind)).__name__ for kind in SCHEDULERS}
    if name not in known:
        raise UserError(f"{file}: scheduler {name!r} is not one UniHand samples with ({', '.join(sorted(known))})")
    return getattr(diffusers, name).from_config(config)


@lru_cache(maxsize=8)
def _hand(mano_dir: str | None, is_right: bool) -> nn.Module:
    """The hand model of one side, loaded once per process."""
    return load_hand_model(mano_dir, is_right=is_right)
