"""``UniHand``: the joint VAE + latent denoiser as one model, with ``from_pretrained`` and ``generate``.

Checkpoints are directories holding ``config.json`` and ``model.safetensors`` (never pickles).
``generate`` covers estimation from 2D keypoints, lifting 3D keypoints, infilling and editing
(any mix of modalities with per-frame masks), and unconditional sampling, for any length:
sequences are padded to a multiple of 8 by repeating the last frame's conditions, and inputs
longer than one window are generated in overlapping windows, each conditioned on the end of the
previous one (as MANO infilling) and cross-faded into one smooth motion.
"""

from __future__ import annotations

import json
import logging
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from unihand.config import ModelConfig, from_dict, to_dict
from unihand.data.io import Conditions, Motion
from unihand.files import atomic_write
from unihand.diffusion.sampling import SCHEDULERS, guided_sample, sample_scheduler
from unihand.errors import UserError
from unihand.geometry.camera import DEFAULT_FOV_DEG, default_intrinsics
from unihand.geometry.canonical import check_camera_poses
from unihand.geometry.mirror import (
    mirror_camera_poses,
    mirror_image,
    mirror_intrinsics,
    mirror_keypoints_2d_normalized,
    mirror_mano_vector,
    mirror_points,
)
from unihand.geometry.rotations import axis_angle_to_rot6d, rot6d_to_axis_angle
from unihand.hand import load_hand_model
from unihand.models.backbones import build_backbone
from unihand.models.denoiser import MODALITIES, Denoiser
from unihand.models.joint_vae import JointVAE
from unihand.models.perceptron import HandPerceptron
from unihand.models.quantize import MODES as QUANTIZE_MODES
from unihand.models.quantize import quantize as quantize_model
from unihand.refine.objective import RefineConfig
from unihand.refine.refiner import Refiner

log = logging.getLogger("unihand")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
DEFAULT_IMAGE_SIZE = (640, 480)


def check_device(device: str | torch.device) -> torch.device:
    """A torch device that exists here, or a one-line UserError."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"--device {device!r}: not a torch device; use cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: only cpu and cuda are supported")
    return dev


def shipped_checkpoint() -> Path:
    """The small model trained on the synthetic dataset that ships inside the package."""
    return Path(str(resources.files("unihand") / "assets" / "unihand-small"))


class UniHand(nn.Module):
    """Joint VAE + denoiser; see the module docstring."""

    def __init__(self, cfg: ModelConfig, mano_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.vae = JointVAE(cfg.vae)
        vis = cfg.vision
        self.denoiser = Denoiser(cfg.diffusion, self.vae.latent_dim, vision=vis.enabled, vision_window=vis.window)
        if vis.enabled:
            self.backbone = build_backbone(vis.backbone, size=vis.backbone_size, path=vis.backbone_path,
                                           untrained=vis.untrained, input_size=vis.input_size, small_dim=vis.small_dim)
            if vis.frozen:
                self.backbone.freeze()
            self.perceptron = HandPerceptron(self.backbone.dim, cfg.diffusion.d_model, heads=vis.heads,
                                             layers=vis.layers, pooling=vis.pooling, rope=vis.rope)
            self.init_proj = nn.Linear(self.vae.latent_dim, cfg.diffusion.d_model)
        self.mano_dir = mano_dir
        self.meta: dict[str, Any] = {}
        self.quantized: str | None = None  # set by from_pretrained(quantize=...): inference only

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device: str | torch.device = "cpu", mano_dir: str | None = None,
        backbone_path: str | None = None, quantize: str | None = None,
    ) -> "UniHand":
        """Load a checkpoint directory (``None``: the shipped small model).

        ``backbone_path``: where the frozen DINOv2 weights of a vision checkpoint live on this machine
        (they are never stored in our checkpoints). ``quantize="int8"``: faster CPU inference
        (:mod:`unihand.models.quantize`).
        """
        if quantize is not None and quantize not in QUANTIZE_MODES:
            raise UserError(f"unknown quantization '{quantize}' (choose from {', '.join(QUANTIZE_MODES)})")
        if quantize is not None and str(device).split(":")[0] != "cpu":
            raise UserError(f"quantize={quantize!r} runs on the CPU only, not on {device}")
        device = check_device(device)
        path = Path(path) if path is not None else shipped_checkpoint()
        cfg_path, w_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        if not cfg_path.exists() or not w_path.exists():
            raise UserError(f"{path}: not a UniHand checkpoint (expected {CONFIG_NAME} and {WEIGHTS_NAME} inside)")
        try:
            meta = json.loads(cfg_path.read_text())
            cfg = from_dict(meta["model"], where=f"{cfg_path}: model")
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise UserError(f"{cfg_path}: unreadable checkpoint config ({err})") from None
        if backbone_path is not None:
            cfg.vision.backbone_path = backbone_path
        model = cls(cfg, mano_dir=mano_dir)
        try:
            state = load_file(str(w_path))
        except (SafetensorError, OSError) as err:
            raise UserError(f"{w_path}: unreadable weights ({err})") from None
        model.load_weights(state, w_path, partial=meta.get("stage") == "vae", skip=model._external_prefixes())
        model.meta = meta
        model = model.to(device).eval()
        if quantize is None:
            return model
        model.quantized = quantize
        return quantize_model(model, quantize)

    def _external_prefixes(self) -> tuple[str, ...]:
        """Weights that live outside our checkpoints: a frozen DINOv2 loaded from the user's disk."""
        return ("backbone.",) if self.cfg.vision.enabled and self.cfg.vision.backbone == "dinov2" else ()

    def load_weights(
        self, state: dict[str, Tensor], where: Path | str, partial: bool = False, skip: tuple[str, ...] = ()
    ) -> None:
        """Load a state dict, failing with one line when it does not fit this architecture."""
        own = {k: v for k, v in self.state_dict().items() if not (skip and k.startswith(skip))}
        bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        unknown = [k for k in state if k not in own]
        missing = [] if partial else [k for k in own if k not in state]
        if bad or unknown or missing:
            first = (bad or unknown or missing)[0]
            raise UserError(
                f"{where}: weights do not fit the configured model ({len(bad)} wrong shapes, "
                f"{len(unknown)} unknown, {len(missing)} missing; first: '{first}')"
            )
        broken = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
        if broken is not None:
            raise UserError(f"{where}: weight '{broken}' holds NaN or infinite values (a diverged or damaged checkpoint)")
        self.load_state_dict(state, strict=not (partial or skip))

    def save_pretrained(self, path: str | Path, stage: str = "full", extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (atomically). ``stage='vae'`` saves the VAE only."""
        if self.quantized:
            raise UserError(f"a {self.quantized}-quantized model is for inference only and cannot be saved; "
                            "save the float32 model (load it without quantize)")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if stage == "vae":
            state = {k: v for k, v in state.items() if k.startswith("vae.")}
        skip = self._external_prefixes()
        state = {k: v for k, v in state.items() if not (skip and k.startswith(skip))}
        meta = {"format_version": FORMAT_VERSION, "stage": stage, "model": to_dict(self.cfg), **(extra or {})}
        atomic_write(path / WEIGHTS_NAME, lambda tmp: save_file(state, tmp))
        atomic_write(path / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
        return path

    # ------------------------------------------------------------------ latents
    @property
    def segment(self) -> int:
        return self.cfg.vae.segment

    def encode_latent(self, mano: Tensor) -> Tensor:
        """Clean motion (B, N, 61) -> scaled latent [mu_g; z] (B, N + 1, L)."""
        z, mu, _ = self.vae.encode_motion(self.vae.codec.encode_motion(mano))
        return torch.cat([mu[:, None], z], dim=1) / self.denoiser.latent_scale

    def decode_latent(self, latent: Tensor, first_frame: Tensor | None = None) -> Tensor:
        """Scaled latent (B, N + 1, L) -> motion features (B, N, 109); ``first_frame`` (B, 61) or None."""
        latent = latent * self.denoiser.latent_scale
        anchor = None if first_frame is None else self.vae.codec.encode_motion(first_frame)
        return self.vae.decode(latent[:, 0], latent[:, 1:], anchor)

    def condition_tokens(self, batch: dict[str, Tensor]) -> Tensor:
        """Encode the structured conditions present in ``batch`` and fuse them with null tokens.

        Keys: ``kp2d`` (B,N,21,2) normalised + ``kp2d_mask`` (B,N,21) + ``K`` + ``image_size``;
        ``kp3d`` (B,N,21,3) + ``kp3d_mask`` (B,N,21); ``mano`` (B,N,61) + ``mano_mask`` (B,N).
        """
        vae, codec = self.vae, self.vae.codec
        present = [m for m in MODALITIES if m in batch]
        if not present:
            raise ValueError("condition_tokens needs at least one modality to know the sequence length")
        b, n = batch[present[0]].shape[:2]
        conds: dict[str, tuple[Tensor, Tensor]] = {}
        if "kp2d" in batch:
            jm = batch["kp2d_mask"]
            rays = codec.rays(batch["kp2d"], batch["K"], batch["image_size"])
            fm = jm.any(-1)
            conds["kp2d"] = (vae.encode_condition("kp2d", codec.encode_kp2d(rays, jm), _attendable(fm)), fm)
        if "kp3d" in batch:
            jm = batch["kp3d_mask"]
            fm = jm.any(-1)
            conds["kp3d"] = (vae.encode_condition("kp3d", codec.encode_kp3d(batch["kp3d"], jm), _attendable(fm)), fm)
        if "mano" in batch:
            fm = batch["mano_mask"]
            z, _, _ = vae.encode_motion(codec.encode_motion(batch["mano"]), _attendable(fm))
            conds["mano"] = (z, fm)
        conds = {m: (zc / self.denoiser.latent_scale, fm) for m, (zc, fm) in conds.items()}
        return self.denoiser.fuse(conds, b, n)

    def hand_tokens(
        self, frames: Tensor, first_frame: Tensor | None = None, first_known: Tensor | None = None,
        vision_mask: Tensor | None = None,
    ) -> Tensor:
        """Hand perceptron over full frames (B, N, 3, H, W) uint8 -> one hand token per frame (B, N, d).

        The initial-pose query is the decoder's anchor token (``Linear`` of the known first frame, else
        the learned unknown anchor), projected to the denoiser width. Computed once per sequence.
        """
        b, n = frames.shape[:2]
        dense = self.backbone.encode(frames.flatten(0, 1), batch_size=64)
        return self.perceive(dense.tokens.unflatten(0, (b, n)), dense.valid, first_frame, first_known, vision_mask)

    def perceive(
        self, tokens: Tensor, token_valid: Tensor, first_frame: Tensor | None = None,
        first_known: Tensor | None = None, vision_mask: Tensor | None = None,
    ) -> Tensor:
        """Hand perceptron over dense tokens (B, N, h, w, d_v) (e.g. from a feature cache) -> (B, N, d)."""
        b = tokens.shape[0]
        anchor = self.vae.unknown_anchor.expand(b, -1)
        if first_frame is not None:
            known = self.vae.anchor_in(self.vae.codec.encode_motion(first_frame))
            anchor = known if first_known is None else torch.where(first_known[:, None], known, anchor)
        return self.perceptron(tokens, self.init_proj(anchor), vision_mask, token_valid=token_valid)

    @torch.no_grad()
    def sample(
        self,
        batch: dict[str, Tensor],
        *,
        num_frames: int,
        batch_size: int = 1,
        steps: int | None = None,
        cfg_scale: float | None = None,
        generator: torch.Generator | None = None,
        first_frame: Tensor | None = None,
        scheduler: str = "ddim",
    ) -> Tensor:
        """One window: conditions -> MANO (B, N, 61). An empty ``batch`` samples unconditionally.
        ``scheduler``: ``ddim`` (the paper's), ``dpm`` (DPM-Solver++) or ``euler``.

        ``batch["frames"]`` (B, N, 3, H, W) uint8 with ``batch["vision_mask"]`` (B, N) adds the vision
        condition (checkpoints trained with vision only).
        """
        dcfg = self.cfg.diffusion
        device = self.denoiser.latent_scale.device
        if any(m in batch for m in MODALITIES):
            tokens = self.condition_tokens(batch)
        else:
            batch_size = batch["frames"].shape[0] if "frames" in batch else batch_size
            tokens = self.denoiser.null_conditions(batch_size, num_frames).to(device)
        vision = vision_mask = None
        if "frames" in batch:
            vision_mask = batch.get("vision_mask")
            vision = self.hand_tokens(batch["frames"], first_frame, vision_mask=vision_mask)
        latent = guided_sample(
            self.denoiser, sample_scheduler(dcfg, scheduler), tokens,
            steps=steps or dcfg.sample_steps,
            cfg_scale=dcfg.cfg_scale if cfg_scale is None else cfg_scale,
            generator=generator, vision=vision, vision_mask=vision_mask,
        )
        return self.vae.codec.decode_motion(self.decode_latent(latent, first_frame))

    # ------------------------------------------------------------------ user-facing generation
    @torch.no_grad()
    def generate(
        self,
        conditions: Conditions | None = None,
        *,
        num_frames: int | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        seed: int = 0,
        first_frame: np.ndarray | None = None,
        window: int | None = None,
        overlap: int = 16,
        frames: np.ndarray | None = None,
        vision_mask: np.ndarray | None = None,
        progress: bool = False,
        refine: bool = True,
        refine_config: RefineConfig | None = None,
        camera_poses: np.ndarray | None = None,
        camera_scale: float | str = 1.0,
        scheduler: str = "ddim",
    ) -> Motion:
        """Generate a complete motion from any mix of conditions (None: unconditional, ``num_frames`` long).

        Left hands (``conditions.is_right`` False) are mirrored in and out. ``first_frame`` (61,)
        is a known MANO first frame used as the decoder's anchor; a MANO condition on frame 0
        serves the same purpose. ``frames`` (N, H, W, 3) uint8 full video frames (vision checkpoints),
        ``vision_mask`` (N,) the frames to use. ``progress`` shows a bar over the windows of a long
        input. With ``refine`` (default) the sample is refined against every observation
        (:mod:`unihand.refine`: reprojection, 3D keypoints, given MANO, smoothness, joint limits, one
        shape); ``refine=False`` returns the pure diffusion sample (the paper's sampling, for
        ablations). ``camera_poses`` (N, 4, 4) T_cano_from_cam: a moving camera's poses, so 2D keypoints
        are reprojected through each frame's own camera; their translations are in metres times
        ``camera_scale``, or known only up to scale with ``camera_scale="fit"`` (monocular camera
        tracking): the scale is then fitted to the hands, and the motion's ``extra["T_cano_from_cam"]``
        holds the poses in metres either way. ``scheduler``: ``ddim`` (the paper's, default), ``dpm``
        (DPM-Solver++) or ``euler``, on the model's training schedule. Seeded and reproducible.
        """
        self._check_sampling(steps, cfg_scale, seed, num_frames, window, overlap)
        if scheduler not in SCHEDULERS:
            raise UserError(f"scheduler={scheduler!r}: choose from {', '.join(SCHEDULERS)}")
        cond = conditions if conditions is not None else Conditions()
        if cond.modalities():
            total = cond.num_frames
        elif frames is not None:
            total = len(frames)
        else:
            total = self.cfg.frames if num_frames is None else num_frames
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
            arrays.update(self._frame_arrays(frames, vision_mask, total, mirror=not cond.is_right))
        if camera_poses is not None:
            camera_poses = check_camera_poses(camera_poses, total)
        if not cond.is_right:
            arrays = _mirror_arrays(arrays)
            first_frame = None if first_frame is None else mirror_mano_vector(first_frame)
            camera_poses = None if camera_poses is None else mirror_camera_poses(camera_poses)
        mano = self._generate_windows(arrays, total, steps, cfg_scale, seed, first_frame, window, overlap, progress,
                                      scheduler)
        scale = 1.0 if camera_scale == "fit" else _check_scale(camera_scale)
        if refine:
            refiner = Refiner(load_hand_model(self.mano_dir, is_right=True), refine_config)
            mano = refiner(mano, arrays, cond.fps, camera_poses, camera_scale)
            scale = refiner.camera_scale
        if not cond.is_right:
            mano = mirror_mano_vector(mano)
        motion = Motion.from_mano(mano, is_right=cond.is_right, fps=cond.fps, K=cond.K, image_size=cond.image_size)
        if camera_poses is not None:
            metric = (camera_poses if cond.is_right else mirror_camera_poses(camera_poses)).copy()
            metric[:, :3, 3] *= scale
            motion.extra["T_cano_from_cam"] = metric.astype(np.float32)
        hand = load_hand_model(self.mano_dir, is_right=cond.is_right)
        out = hand(**{k: torch.from_numpy(getattr(motion, k)) for k in ("global_orient", "hand_pose", "betas", "transl")})
        motion.joints = out.joints.numpy().astype(np.float32)
        if out.vertices is not None:
            motion.vertices = out.vertices.numpy().astype(np.float32)
        return motion

    def _check_sampling(self, steps: int | None, cfg_scale: float | None, seed: int, num_frames: int | None,
                        window: int | None, overlap: int) -> None:
        """Sampling settings, checked before any work (one-line UserError)."""
        train_steps = self.cfg.diffusion.train_steps
        if steps is not None and (not isinstance(steps, (int, np.integer)) or not 1 <= steps <= train_steps):
            raise UserError(f"steps={steps!r}: expected a whole number of DDIM steps from 1 to {train_steps} "
                            "(the checkpoint's training steps)")
        if cfg_scale is not None and not (isinstance(cfg_scale, (int, float, np.number)) and math.isfinite(cfg_scale)):
            raise UserError(f"cfg_scale={cfg_scale!r}: expected a finite number (1: no guidance; the checkpoint's: "
                            f"{self.cfg.diffusion.cfg_scale:g})")
        if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise UserError(f"seed={seed!r}: expected a whole number from 0 to 2**63 - 1")
        if num_frames is not None and (not isinstance(num_frames, (int, np.integer)) or num_frames < 1):
            raise UserError(f"num_frames={num_frames!r}: expected a positive whole number of frames")
        seg = self.segment
        if window is not None and (not isinstance(window, (int, np.integer)) or window < seg or window % seg):
            raise UserError(f"window={window!r}: expected a multiple of the decoder segment ({seg}) of at least {seg}")
        win = window or self.cfg.frames
        if not isinstance(overlap, (int, np.integer)) or not 0 <= overlap < win:
            raise UserError(f"overlap={overlap!r}: expected a whole number of frames from 0 to {win - 1}")

    def _frame_arrays(
        self, frames: np.ndarray, vision_mask: np.ndarray | None, total: int, mirror: bool
    ) -> dict[str, np.ndarray]:
        """Video frames -> ``frames`` (N, 3, H, W) uint8 (mirrored for a left hand) + ``vision_mask`` (N,)."""
        if not self.cfg.vision.enabled:
            raise UserError("this checkpoint was trained without the vision condition; drop the frames "
                            "or use a vision-enabled checkpoint")
        from unihand.models.image import frames_to_tensor

        rgb = frames_to_tensor(frames)  # (N, 3, H, W), validated: one size, RGB
        if rgb.shape[0] != total:
            raise UserError(f"{rgb.shape[0]} video frames but the other conditions have {total} frames")
        if rgb.dtype != torch.uint8:
            rgb = (rgb * 255).round().to(torch.uint8)
        out = rgb.numpy()
        if mirror:
            out = np.ascontiguousarray(mirror_image(out, layout="CHW"))
        mask = np.ones(total, bool) if vision_mask is None else np.asarray(vision_mask, bool).reshape(total)
        return {"frames": out, "vision_mask": mask}

    def _generate_windows(
        self, arrays: dict[str, np.ndarray], total: int, steps: int | None, cfg_scale: float | None,
        seed: int, first_frame: np.ndarray | None, window: int | None, overlap: int, progress: bool = False,
        scheduler: str = "ddim",
    ) -> np.ndarray:
        seg = self.segment
        win = window or self.cfg.frames
        padded = max(seg, math.ceil(total / seg) * seg)
        arrays = {k: _pad_last(v, padded) if v.ndim and v.shape[0] == total else v for k, v in arrays.items()}
        if padded <= win:
            starts = [0]
        else:
            stride = win - overlap
            starts = list(range(0, padded - win, stride)) + [padded - win]
            win = min(win, padded)
        device = self.denoiser.latent_scale.device
        gen = torch.Generator(device="cpu").manual_seed(seed)
        out = np.zeros((padded, 61), dtype=np.float32)
        done = 0  # frames [0, done) are final
        for start in tqdm(starts, desc="generate", unit="window", disable=not progress or len(starts) == 1, leave=False):
            length = min(win, padded - start)
            sl = slice(start, start + length)
            chunk = {k: (v[sl] if v.ndim and v.shape[0] == padded else v) for k, v in arrays.items()}
            anchor = first_frame if start == 0 else None
            if start > 0:  # condition on the overlap already generated (infilling keeps the windows consistent)
                known = np.arange(start, start + length) < done
                mano = chunk.get("mano", np.zeros((length, 61), np.float32)).copy()
                mask = chunk.get("mano_mask", np.zeros(length, bool)).copy()
                mano[known], mask[known] = out[start:done], True
                chunk["mano"], chunk["mano_mask"] = mano, mask
                anchor = out[start]
            elif "mano_mask" in chunk and chunk["mano_mask"][0] and anchor is None:
                anchor = chunk["mano"][0]
            batch = {k: torch.from_numpy(np.asarray(v))[None].to(device) for k, v in chunk.items()}
            ff = None if anchor is None else torch.from_numpy(np.asarray(anchor, np.float32))[None].to(device)
            noise_gen = torch.Generator(device="cpu").manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            res = self.sample(batch, num_frames=length, steps=steps, cfg_scale=cfg_scale, generator=noise_gen,
                              first_frame=ff, scheduler=scheduler)
            res = res[0].float().cpu().numpy()
            ov = max(0, done - start)
            if ov:
                x = np.linspace(0.0, 1.0, ov + 2, dtype=np.float32)[1:-1, None]
                w = x * x * (3 - 2 * x)  # smoothstep: the blend starts and ends with zero slope
                out[start:done] = _blend(out[start:done], res[:ov], w)
            out[start + ov : start + length] = res[ov:]
            done = start + length
        return out[:total]


def _check_scale(scale: Any) -> float:
    if isinstance(scale, (int, float, np.number)) and math.isfinite(scale) and scale > 0:
        return float(scale)
    raise UserError(f"camera_scale={scale!r}: expected a positive number (metres per unit) or 'fit'")


def _attendable(frame_mask: Tensor) -> Tensor:
    """Attention validity: a sample with no valid frame attends everywhere (its output is nulled)."""
    return frame_mask | ~frame_mask.any(dim=1, keepdim=True)


def _pad_last(x: np.ndarray, n: int) -> np.ndarray:
    """Pad along frames by repeating the last frame (paper B.1)."""
    if x.shape[0] >= n:
        return x
    return np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], axis=0)], axis=0)


def _blend(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cross-fade two (T, 61) MANO sequences (weight ``w`` on b): rotations in 6D, the rest linearly."""
    ra = axis_angle_to_rot6d(a[:, :48].reshape(-1, 16, 3))
    rb = axis_angle_to_rot6d(b[:, :48].reshape(-1, 16, 3))
    rot = rot6d_to_axis_angle((1 - w[:, :, None]) * ra + w[:, :, None] * rb).reshape(-1, 48)
    return np.concatenate([rot, (1 - w) * a[:, 48:] + w * b[:, 48:]], axis=1).astype(np.float32)


def condition_arrays(cond: Conditions, total: int) -> dict[str, np.ndarray]:
    """Conditions -> float32/bool arrays with per-joint masks (N, 21), camera defaults filled in."""
    cond.validate()  # again: fields may have been set after construction
    cond.mask_non_finite()
    out: dict[str, np.ndarray] = {}
    for m in cond.modalities():
        arr = getattr(cond, m).astype(np.float32)
        if arr.shape[0] != total:
            raise UserError(f"conditions: '{m}' has {arr.shape[0]} frames, other modalities {total}")
        mask = getattr(cond, f"{m}_mask")
        if mask is None:
            mask = np.ones(arr.shape[:2] if m != "mano" else arr.shape[:1], dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        if m != "mano" and mask.ndim == 1:
            mask = np.repeat(mask[:, None], 21, axis=1)
        if m == "mano" and mask.ndim != 1:
            raise UserError(f"conditions: 'mano_mask' must have shape ({total},), got {mask.shape}")
        if m == "kp2d" and cond.kp2d_conf is not None:
            conf = np.asarray(cond.kp2d_conf, np.float32)
            mask = mask & (conf > 0)
            out["kp2d_conf"] = conf
        out[m], out[f"{m}_mask"] = arr, mask
    if "kp2d" in out:
        size = np.asarray(cond.image_size if cond.image_size is not None else DEFAULT_IMAGE_SIZE, dtype=np.float32)
        if cond.K is None:
            log.warning("no intrinsics given: assuming a %.0f° field of view across the longer side", DEFAULT_FOV_DEG)
            K = default_intrinsics(int(size[0]), int(size[1]))
        else:
            K = cond.K
        out["K"], out["image_size"] = np.asarray(K, np.float32), size
    return out


def _mirror_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mirror left-hand conditions to a right hand (docs/design.md §2)."""
    out = dict(arrays)
    if "kp2d" in out:
        width = int(out["image_size"][0])
        out["kp2d"] = mirror_keypoints_2d_normalized(out["kp2d"], width).astype(np.float32)
        out["K"] = mirror_intrinsics(out["K"], width).astype(np.float32)
    if "kp3d" in out:
        out["kp3d"] = mirror_points(out["kp3d"]).astype(np.float32)
    if "mano" in out:
        out["mano"] = mirror_mano_vector(out["mano"]).astype(np.float32)
    return out
