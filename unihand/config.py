"""Model presets (`paper`, `small`) and YAML configs with command-line overrides."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
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

    def check(self, where: str) -> None:
        _check_heads(where, self.d_model, self.heads)


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

    def check(self, where: str) -> None:
        _check_heads(where, self.d_model, self.heads)
        if self.sample_steps > self.train_steps:
            raise UserError(f"{where}.sample_steps: at most train_steps ({self.train_steps}), got {self.sample_steps}")


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

    def check(self, where: str) -> None:
        if self.frames % self.vae.segment:
            raise UserError(f"{where}.frames: a multiple of vae.segment ({self.vae.segment}), got {self.frames}")
        if self.vision.enabled:
            _check_heads(f"{where}.vision", self.diffusion.d_model, self.vision.heads)


def _check_heads(where: str, d_model: int, heads: int) -> None:
    """Attention heads split ``d_model`` evenly, into an even size (rotary embeddings rotate pairs)."""
    if d_model % heads or (d_model // heads) % 2:
        raise UserError(f"{where}: d_model ({d_model}) must split into {heads} heads of an even size")


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {
        "vae": {"d_model": 128, "layers": 3, "heads": 4, "ffn": 256},
        "diffusion": {"d_model": 128, "layers": 4, "heads": 4, "ffn": 256},
        "vision": {"heads": 4},
    },
    # between the two: a workstation GPU or a long CPU run
    "base": {
        "vae": {"d_model": 256, "layers": 6, "heads": 8, "ffn": 1024},
        "diffusion": {"d_model": 256, "layers": 8, "heads": 8, "ffn": 1024},
        "vision": {"heads": 8},
    },
}


#: Value rules the types alone do not say, per config class and field (the class's own fields only:
#: a field of the same name in another class is not affected).
POSITIVE_INT, PROBABILITY, NON_NEGATIVE = "an integer >= 1", "a probability in [0, 1]", "a number >= 0"
RULES: dict[str, dict[str, str | tuple[str, ...]]] = {
    "VAEConfig": {
        **dict.fromkeys(("d_model", "layers", "heads", "ffn", "segment"), POSITIVE_INT),
        **dict.fromkeys(("dropout", "p_unknown_anchor"), PROBABILITY),
        **dict.fromkeys(("w_joint_rec", "w_kl", "w_latent", "w_aux"), NON_NEGATIVE),
    },
    "DiffusionConfig": {
        **dict.fromkeys(("d_model", "layers", "heads", "ffn", "train_steps", "sample_steps"), POSITIVE_INT),
        **dict.fromkeys(("dropout", "p_drop_condition", "p_frame_mask"), PROBABILITY),
        **dict.fromkeys(("w_rec", "cfg_scale"), NON_NEGATIVE),
    },
    "VisionConfig": {
        **dict.fromkeys(("input_size", "small_dim", "layers", "heads"), POSITIVE_INT),
        **dict.fromkeys(("p_drop", "p_frame_drop"), PROBABILITY),
        "window": NON_NEGATIVE,
        "backbone": ("small", "dinov2"), "backbone_size": ("small", "base", "large", "giant"),
        "pooling": ("perceptron", "avg"), "rope": ("3d", "1d"),
    },
    "ModelConfig": {"frames": POSITIVE_INT, "hand_model": ("kinematic", "mano")},
}
_RULE_TESTS = {POSITIVE_INT: lambda v: v >= 1, PROBABILITY: lambda v: 0 <= v <= 1, NON_NEGATIVE: lambda v: v >= 0}


def _is_sequence(tp: Any) -> bool:
    """``tuple[X, ...]``: any number of X (a list in YAML and JSON)."""
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _type_name(tp: Any) -> str:
    if _is_sequence(tp):
        return "a list of " + _type_name(typing.get_args(tp)[0]).removeprefix("a ").removeprefix("an ") + "s"
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args:
        return " or ".join(_type_name(a) for a in args) + (" or null" if type(None) in typing.get_args(tp) else "")
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping",
            list: "a list"}.get(typing.get_origin(tp) or tp, getattr(tp, "__name__", str(tp)))


def _fits(tp: Any, value: Any) -> bool:
    """Whether ``value`` (parsed YAML/JSON) is of the annotated type ``tp``."""
    if tp is Any:
        return True
    if _is_sequence(tp):
        return isinstance(value, (list, tuple)) and all(_fits(typing.get_args(tp)[0], v) for v in value)
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(a, value) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, origin or tp)


def _key(where: str, name: str) -> str:
    """``where.name``; a ``where`` ending in ": " (a file's path) is a prefix, not a section."""
    return f"{where}{name}" if where.endswith(": ") else f"{where}.{name}"


def check_value(where: str, name: str, tp: Any, value: Any, owner: str = "") -> None:
    """One-line :class:`UserError` unless ``value`` has type ``tp`` and obeys :data:`RULES` for field
    ``name`` of the config class named ``owner``."""
    key = _key(where, name)
    if not _fits(tp, value):
        raise UserError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    rule = RULES.get(owner, {}).get(name)
    if rule is None or value is None or isinstance(value, bool):
        return
    if isinstance(rule, tuple):
        if value not in rule:
            raise UserError(f"{key}: expected one of {', '.join(rule)}, got {value!r}")
    elif not _RULE_TESTS[rule](value):
        raise UserError(f"{key}: expected {rule}, got {value!r}")


def typed(cls: type, values: Any, where: str) -> Any:
    """Build dataclass ``cls`` from the nested mapping ``values``: unknown keys, wrong types and values
    out of range are one-line user errors naming the key (``where.key``)."""
    if not isinstance(values, dict):
        raise UserError(f"{where.rstrip(': ')}: expected a mapping of settings, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, val in values.items():
        if key not in known:
            raise UserError(f"{_key(where, key)}: unknown setting (known: {', '.join(sorted(known))})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = typed(tp, val, _key(where, key))
        else:
            check_value(where, key, tp, val, cls.__name__)
            if _is_sequence(tp):
                item = typing.get_args(tp)[0]
                val = tuple(float(v) if item is float else v for v in val)
            kwargs[key] = float(val) if tp is float else val
    out = cls(**kwargs)
    check = getattr(out, "check", None)
    if check is not None:
        check(where)
    return out


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def model_config(preset: str = "small", overrides: dict[str, Any] | None = None) -> ModelConfig:
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    return typed(ModelConfig, deep_update(PRESETS[preset], overrides or {}), "model")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any], where: str = "model") -> ModelConfig:
    """A checkpoint's model config; ``where`` prefixes the error (e.g. the config file's path)."""
    return typed(ModelConfig, values, where)


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` -> nested dict, value parsed as YAML (numbers, bools, lists)."""
    if "=" not in text:
        raise UserError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    try:
        value: Any = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise UserError(f"--set {text}: the value is not valid YAML ({str(err).splitlines()[0]})") from None
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"--set {text}: the key must look like section.name (e.g. train.max_steps)")
    for part in reversed(parts):
        value = {part: value}
    return value


def packaged_configs() -> dict[str, Path]:
    """The training configs shipped inside the package, by name (``vae_small``, ...)."""
    from importlib import resources

    folder = Path(str(resources.files("unihand") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def config_path(text: str | Path) -> Path:
    """A config file: the path itself when it exists, else the packaged config of that name (``vae_small``,
    or the file name of one, so ``configs/vae_small.yaml`` keeps working outside a source checkout)."""
    path = Path(text)
    if path.exists():
        return path
    packaged = packaged_configs()
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    if name in packaged:
        return packaged[name]
    raise UserError(f"{text}: config file not found (packaged configs: {', '.join(packaged)})")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config (a file or a packaged config's name) as a mapping; one-line errors."""
    path = config_path(path)
    if not path.is_file():
        raise UserError(f"{path}: the config path is not a file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: not a valid YAML config ({reason})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the config ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data
