"""Stage 0, ``unihand train backbone``: pretrain the small CNN backbone on single rendered frames.

The paper's vision backbone is a frozen DINOv2 pretrained on images. On a CPU, and for the
synthetic demo, its stand-in is :class:`~unihand.models.backbones.SmallBackbone`, pretrained here
once and then frozen (``model.vision.frozen``) so that its dense tokens can be cached for the
diffusion stage, as DINOv2's are. Task: from a full, uncropped letterboxed frame, regress the hand's
2D joints (in the frame, normalised by its side), its wrist-relative 3D joints in the camera frame
and its wrist depth, through a :class:`PoseProbe` on the dense tokens. The probe is dropped after
pretraining; only the backbone's weights are exported (``OUT/export/backbone.safetensors``).
Frames: ``frames_per_window`` random frames of each synthetic training sequence, rendered alone
(:class:`RenderedFrames`; left hands as they are: the backbone learns both hands).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import Dataset

from unihand.files import atomic_write
from unihand.data.synthetic.world import SynthConfig, SyntheticSequence, SyntheticWorld
from unihand.errors import UserError
from unihand.geometry.canonical import rigid_inverse, transform_points
from unihand.models.backbones import SmallBackbone
from unihand.models.image import letterbox_pixels

BACKBONE_FILE = "backbone.safetensors"
#: Units of the regression targets: 2D in frame sides, 3D offsets in decimetres, log depth.
_REL_SCALE = 10.0
#: Length of a frame's pose targets: 21 x 2D, 21 x wrist-relative 3D, log wrist depth.
POSE_DIMS = 21 * 2 + 21 * 3 + 1


class PoseProbe(nn.Module):
    """Per-joint soft-argmax over the token grid (2D); the joints' attention-pooled tokens -> wrist-relative
    3D joints; the mean token -> wrist depth. Localising joints token by token is what the perceptron needs."""

    def __init__(self, dim: int, grid: int) -> None:
        super().__init__()
        self.logits = nn.Linear(dim, 21)
        self.rel = nn.Parameter(torch.randn(21, dim, 3) * dim**-0.5)
        self.depth = nn.Linear(dim, 1)
        c = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
        self.register_buffer("centers", torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2),
                             persistent=False)

    def forward(self, tokens: Tensor) -> Tensor:
        """(M, h, w, d) -> (M, POSE_DIMS)."""
        x = tokens.flatten(1, 2)
        w = self.logits(x).softmax(dim=1)  # (M, L, 21): where each joint is
        uv = torch.einsum("mlj,lc->mjc", w, self.centers)
        rel = torch.einsum("mjd,jdc->mjc", torch.einsum("mlj,mld->mjd", w, x), self.rel)
        return torch.cat([uv.flatten(1), rel.flatten(1), self.depth(x.mean(1))], dim=-1)


def pose_targets(joints_cam: Tensor, K: Tensor, size: float | Tensor) -> Tensor:
    """(M, 21, 3) camera-frame joints, intrinsics (3, 3) or (M, 3, 3), image side(s) -> targets (M, POSE_DIMS).

    2D joints divided by ``size`` (a number, or widths and heights (M, 1, 2)) (21 x 2), joints minus the
    wrist in decimetres (21 x 3), log of the wrist depth in metres (1).
    """
    uvw = joints_cam @ K.transpose(-1, -2)
    uv = uvw[..., :2] / uvw[..., 2:].clamp(min=1e-3) / size
    rel = (joints_cam - joints_cam[:, :1]) * _REL_SCALE
    depth = torch.log(joints_cam[:, 0, 2].clamp(min=0.05))
    return torch.cat([uv.flatten(1), rel.flatten(1), depth[:, None]], dim=-1).float()


def window_pose_targets(batch: dict[str, Tensor]) -> Tensor:
    """Per-frame :func:`pose_targets` (B, N, POSE_DIMS) of a batch of windows (canonical ``joints`` back in
    the camera through ``T_cano_from_cam``; 2D in the original image divided by its width and height)."""
    joints = batch["joints"]
    b, n = joints.shape[:2]
    joints_cam = transform_points(joints, rigid_inverse(batch["T_cano_from_cam"])[:, :, None])
    K = batch["K"][:, None].expand(b, n, 3, 3).reshape(b * n, 3, 3)
    size = batch["image_size"][:, None, None].expand(b, n, 1, 2).reshape(b * n, 1, 2)
    return pose_targets(joints_cam.reshape(b * n, 21, 3), K, size).view(b, n, -1)


class RenderedFrames(Dataset):
    """Item ``i``: ``per_window`` random frames of synthetic sequence ``i`` (rendered alone, not mirrored)
    as ``frames`` (k, 3, S, S) uint8 and their ``target`` (k, POSE_DIMS) (:func:`pose_targets`)."""

    def __init__(self, length: int, seed: int, size: int, per_window: int, frames: int = 48) -> None:
        self.world = SyntheticWorld(seed, SynthConfig(frames=frames))
        self.length, self.seed, self.size, self.per_window = int(length), int(seed), int(size), int(per_window)

    def __len__(self) -> int:
        return self.length

    def _item(self, i: int, seq: SyntheticSequence) -> dict[str, Tensor]:
        n = seq.joints_cam.shape[0]
        idx = np.sort(np.random.default_rng([self.seed, i]).choice(n, min(self.per_window, n), replace=False))
        frames = seq.render(self.size, idx)
        frame_K = torch.from_numpy(seq.letterbox(self.size).frame_K(seq.camera.K))
        return {"frames": torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))),
                "target": pose_targets(torch.from_numpy(seq.joints_cam[idx]), frame_K, self.size)}

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self._item(int(i), self.world.sequence(int(i)))

    def __getitems__(self, indices: list[int]) -> list[dict[str, Tensor]]:
        return [self._item(int(i), s) for i, s in zip(indices, self.world.sequences([int(i) for i in indices]))]


def frame_datasets(data_cfg: dict[str, Any], train_cfg: dict[str, Any]) -> tuple[RenderedFrames, RenderedFrames]:
    """Training and validation frames of stage 0 (synthetic, ``data.render_size`` px)."""
    if data_cfg.get("name", "synthetic") != "synthetic" or data_cfg.get("mix"):
        raise UserError("`unihand train backbone` pretrains on rendered synthetic frames (data.name: synthetic)")
    if not data_cfg.get("render_size"):
        raise UserError("backbone pretraining needs data.render_size (the backbone's input size, e.g. 128)")
    size, k = int(data_cfg["render_size"]), int(train_cfg.get("frames_per_window", 4))
    n = int(data_cfg.get("frames", 48))
    return (RenderedFrames(int(data_cfg.get("epoch_size", 100000)), int(data_cfg.get("seed", 0)), size, k, n),
            RenderedFrames(int(data_cfg.get("val_size", 64)), int(data_cfg.get("val_seed", 999)), size, k, n))


class BackbonePretrainer(nn.Module):
    """The backbone with its probe (what stage 0 trains)."""

    def __init__(self, dim: int, input_size: int) -> None:
        super().__init__()
        self.backbone = SmallBackbone(dim=dim, input_size=input_size)
        self.probe = PoseProbe(dim, self.backbone.grid)

    def forward(self, frames: Tensor) -> Tensor:
        """uint8 (M, 3, S, S) letterboxed frames -> probe outputs (M, POSE_DIMS)."""
        pixels = letterbox_pixels(frames, self.backbone.input_size)
        return self.probe(self.backbone(pixels))


def probe_errors(pred: Tensor, target: Tensor, size: int) -> dict[str, Tensor]:
    """Readable errors: 2D in pixels of the S x S frame, wrist-relative 3D in mm, depth in %."""
    d2 = (pred[:, :42] - target[:, :42]).view(-1, 21, 2).norm(dim=-1).mean() * size
    d3 = (pred[:, 42:105] - target[:, 42:105]).view(-1, 21, 3).norm(dim=-1).mean() * (1000.0 / _REL_SCALE)
    dz = (pred[:, 105] - target[:, 105]).abs().mean() * 100.0
    return {"px2d": d2, "mm3d": d3, "depth_pct": dz}


def probe_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """L1 over all targets, the 2D ones weighted x10 (a frame side is ~100x a joint's spread).

    ``mask`` (bool, ``pred``'s leading dims): mean over the frames it keeps only (0 when it keeps none).
    """
    w = torch.ones(target.shape[-1], device=target.device)
    w[:42] = 10.0
    per = (F.l1_loss(pred, target, reduction="none") * w).mean(-1)
    if mask is None:
        return per.mean()
    m = mask.to(per.dtype)
    return (per * m).sum() / m.sum().clamp_min(1.0)


def save_backbone(backbone: SmallBackbone, path: str | Path) -> Path:
    """Write the backbone's weights with its identity as metadata (atomic)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    meta = {"format": "unihand-backbone-1", "identity": json.dumps(backbone.identity(), sort_keys=True)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_backbone(backbone: SmallBackbone, path: str | Path) -> None:
    """Load pretrained weights (a file from :func:`save_backbone` or its export directory) into ``backbone``."""
    path = Path(path)
    file = path / BACKBONE_FILE if path.is_dir() else path
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise UserError(f"{file}: not a readable backbone file ({err}); train one with `unihand train backbone`") from None
    if meta.get("format") != "unihand-backbone-1":
        raise UserError(f"{file}: not a backbone written by `unihand train backbone`")
    theirs, ours = json.loads(meta["identity"]), backbone.identity()
    if theirs != ours:
        raise UserError(f"{file}: backbone {theirs} does not match the configured {ours} "
                        "(set model.vision.small_dim / input_size to match)")
    backbone.load_state_dict(state)


def build_pretrainer(model_cfg: Any) -> BackbonePretrainer:
    """The stage-0 network for ``model.vision`` (small backbone only)."""
    vis = model_cfg.vision
    if vis.backbone != "small":
        raise UserError("`unihand train backbone` pretrains the small backbone; DINOv2 comes pretrained")
    return BackbonePretrainer(vis.small_dim, vis.input_size)


def training_step_outputs(net: BackbonePretrainer, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Loss and readable errors of one batch of :class:`RenderedFrames` items."""
    frames, target = batch["frames"].flatten(0, 1), batch["target"].flatten(0, 1)
    pred = net(frames)
    return probe_loss(pred, target), probe_errors(pred.detach(), target, net.backbone.input_size)
