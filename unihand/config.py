"""Model presets (`paper`, `small`) and YAML configs with command-line overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unihand.errors import UserError


@dataclass
class VAEConfig:
    """Joint VAE (paper A.2): motion encoder, 2D/3D condition encoders, AR decoder."""

    d_model: int = 512
    layers: int = 9
    heads: int = 8
    ffn: int = 2048
    dropout: float = 0.1
    segment: int = 8  # frames decoded per autoregressive step
    condition_encoders: bool = True  # False: the paper's "w/o condition encoders" ablation (MLP)
    w_joint_rec: float = 0.5
    w_kl: float = 1e-4
    w_latent: float = 0.1
    w_aux: float = 0.1
    p_unknown_anchor: float = 0.5  # training: how often the first frame is hidden from the decoder


@dataclass
class DiffusionConfig:
    """Latent denoiser (paper 3.3, A.3) and its DDPM/DDIM schedule."""

    d_model: int = 512
    layers: int = 16
    heads: int = 16
    ffn: int = 2048
    dropout: float = 0.0
    train_steps: int = 50
    sample_steps: int = 10
    cfg_scale: float = 2.0
    w_rec: float = 1.0
    p_drop_condition: float = 0.1  # each modality replaced by its null token
    p_frame_mask: float = 0.5  # probability that a training window gets random per-frame masking


@dataclass
class VisionConfig:
    """Vision condition (paper §3.3): frozen/small backbone + hand perceptron, read by cross-attention."""

    enabled: bool = False
    backbone: str = "small"  # small (trainable, CPU) | dinov2 (frozen, from backbone_path)
    backbone_size: str = "small"  # DINOv2 size
    backbone_path: str | None = None  # local DINOv2 directory (weights are never stored in our checkpoints)
    untrained: bool = False  # ablation "w/o pretrained vision backbone": frozen random weights
    frozen: bool = False  # small backbone frozen (pretrained by `unihand train backbone`); DINOv2 always is
    input_size: int = 224
    small_dim: int = 160
    pooling: str = "perceptron"  # perceptron | avg (ablation "w/o hand perceptron")
    rope: str = "3d"  # 3d | 1d (ablation "w/o 3D RoPE")
    layers: int = 2
    heads: int = 8
    window: int = 1  # denoiser cross-attention: latent token i reads the hand tokens of frames i +- window
    p_drop: float = 0.2  # training: vision dropped for a whole window (CFG) ...
    p_frame_drop: float = 0.2  # ... or per frame


@dataclass
class ModelConfig:
    vae: VAEConfig = field(default_factory=VAEConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    frames: int = 48  # training window length N
    hand_model: str = "kinematic"  # recorded so a checkpoint is used with the hand model it was trained with


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {
        "vae": {"d_model": 128, "layers": 3, "heads": 4, "ffn": 256},
        "diffusion": {"d_model": 128, "layers": 4, "heads": 4, "ffn": 256},
        "vision": {"heads": 4},
    },
}


def _merge(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from nested dict ``values``; unknown keys are user errors."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, val in values.items():
        if key not in known:
            raise UserError(f"{where}: unknown setting '{key}' (known: {', '.join(known)})")
        ftype = known[key].type
        sub = {"VAEConfig": VAEConfig, "DiffusionConfig": DiffusionConfig, "VisionConfig": VisionConfig}.get(str(ftype))
        kwargs[key] = _merge(sub, val, f"{where}.{key}") if sub and isinstance(val, dict) else val
    return cls(**kwargs)


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def model_config(preset: str = "small", overrides: dict[str, Any] | None = None) -> ModelConfig:
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    return _merge(ModelConfig, deep_update(PRESETS[preset], overrides or {}), "model")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any]) -> ModelConfig:
    return _merge(ModelConfig, values, "model")


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` -> nested dict, value parsed as YAML (numbers, bools, lists)."""
    if "=" not in text:
        raise UserError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    value: Any = yaml.safe_load(raw)
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data
