"""DINOv2 through ``transformers``, loaded only from a local directory or the Hugging Face cache
(``local_files_only``): never downloaded at run time, frozen (no gradients, always in eval mode).
``untrained=True`` (paper Table 4, "w/o pretrained E_vision"): the same architecture with random weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from unihand.errors import UserError, require
from unihand.models.backbones import VisionBackbone

#: Architecture of the released DINOv2 checkpoints (``facebook/dinov2-<size>`` on the Hugging Face hub).
DINOV2_SIZES: dict[str, dict[str, Any]] = {
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
    "giant": {"hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24, "use_swiglu_ffn": True},
}
DINOV2_TYPES = ("dinov2", "dinov2_with_registers")


class Dinov2Backbone(VisionBackbone):
    """A frozen ``transformers`` DINOv2 model (with or without registers); returns its patch tokens.

    DINOv2 interpolates its position embeddings to the input grid: 224 px gives 16 x 16 tokens.
    """

    def __init__(self, model: nn.Module, name: str, input_size: int = 224) -> None:
        super().__init__()
        config = model.config
        if config.model_type not in DINOV2_TYPES:
            raise UserError(f"expected a DINOv2 model, got model type '{config.model_type}'")
        self.model = model
        self.name = name
        self.dim = int(config.hidden_size)
        self.patch_size = int(config.patch_size)
        self.input_size = int(input_size)
        self.num_prefix = 1 + int(getattr(config, "num_register_tokens", 0))
        self._check_input_size()
        self.freeze()

    def forward(self, pixels: Tensor) -> Tensor:
        hidden = self.model(pixel_values=pixels).last_hidden_state[:, self.num_prefix :]
        grid = pixels.shape[-1] // self.patch_size
        return hidden.reshape(pixels.shape[0], grid, grid, self.dim)

    def identity(self) -> dict[str, Any]:
        config = {
            k: v for k, v in self.model.config.to_dict().items() if k not in ("transformers_version", "_name_or_path")
        }
        return {"kind": "dinov2", "config": config, "input_size": self.input_size}


def _read_dinov2_config(path: Path) -> dict[str, Any]:
    """``config.json`` of a DINOv2 directory, or a UserError saying what the path holds instead."""
    if not path.exists():
        raise UserError(f"--backbone-path {path}: no such directory")
    if not path.is_dir():
        raise UserError(f"--backbone-path {path}: expected a directory holding a DINOv2 config.json and weights")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserError(f"--backbone-path {path}: no config.json, so this is not a Hugging Face DINOv2 directory")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"--backbone-path {path}: config.json is not valid JSON ({err})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in DINOV2_TYPES:
        raise UserError(
            f"--backbone-path {path}: holds a '{model_type}' model, not DINOv2 (config.json model_type must be one of "
            f"{', '.join(DINOV2_TYPES)})"
        )
    return config


def _missing_weights_message(size: str, where: str) -> str:
    repo = f"facebook/dinov2-{size}"
    return (
        f"DINOv2-{size} weights not found ({where}); nothing is downloaded at run time. "
        f"On a machine with internet run `huggingface-cli download {repo} --local-dir PATH` "
        f"(or `hf download {repo} --local-dir PATH`), copy PATH here and pass `--backbone-path PATH`; "
        f"or fill this machine's Hugging Face cache with `huggingface-cli download {repo}` "
        "and leave --backbone-path unset"
    )


def load_dinov2(
    path: str | os.PathLike | None = None,
    *,
    size: str = "small",
    untrained: bool = False,
    input_size: int = 224,
    cache_dir: str | os.PathLike | None = None,
) -> Dinov2Backbone:
    """A frozen DINOv2 from ``path`` or, without one, ``facebook/dinov2-<size>`` in the Hugging Face cache.

    ``size`` only chooses the cache entry (and, when untrained without a path, the architecture); a
    directory's own config decides its architecture. ``untrained=True`` builds the architecture with
    random weights (config from ``path`` if given, else the released ``size``), reading no weights.
    Never downloads.
    """
    if size not in DINOV2_SIZES:
        raise UserError(f"unknown DINOv2 size '{size}'; choose one of {', '.join(DINOV2_SIZES)}")
    require("transformers", "depth", "a DINOv2 vision backbone")
    from transformers import AutoConfig, AutoModel, Dinov2Config

    name = f"dinov2-{size}"
    if path is None and untrained:
        config = Dinov2Config(image_size=518, **DINOV2_SIZES[size])
        return Dinov2Backbone(AutoModel.from_config(config), name, input_size)
    if path is not None:
        name = f"dinov2:{Path(path).name}"
    else:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = snapshot_download(f"facebook/{name}", local_files_only=True, cache_dir=cache_dir)
        except LocalEntryNotFoundError:
            where = f"not in the Hugging Face cache {cache_dir or constants.HF_HUB_CACHE}"
            raise UserError(_missing_weights_message(size, where)) from None
    path = Path(path)
    _read_dinov2_config(path)
    if untrained:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        return Dinov2Backbone(AutoModel.from_config(config), name, input_size)
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except OSError as err:
        where = f"{path} has a DINOv2 config.json but no readable weights: {err}"
        raise UserError(_missing_weights_message(size, where)) from None
    return Dinov2Backbone(model, name, input_size)
