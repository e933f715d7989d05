"""Lightning checkpoints as safetensors + JSON instead of pickles.

Lightning's default ``torch.save`` checkpoints are pickles; the project loads no pickles but
MANO files. This ``CheckpointIO`` flattens the checkpoint dict: tensors go into a safetensors
file under their path (``a/b/0``), every other leaf (numbers, strings, bools, None) into a JSON
tree stored in the file's metadata. Lists and tuples come back as lists.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import CheckpointIO
from safetensors.torch import load_file, save_file

from unihand.files import atomic_write
from unihand.errors import UserError

_TENSOR = "__tensor__"


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {_TENSOR: prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _split(v, f"{prefix}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    raise TypeError(f"cannot store a {type(obj).__name__} at '{prefix}' in a safetensors checkpoint")


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and _TENSOR in obj:
        return tensors[obj[_TENSOR]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _join(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save_tree(tree: dict[str, Any], path: str | os.PathLike) -> None:
    tensors: dict[str, torch.Tensor] = {}
    meta = _split(tree, "", tensors)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"tree": json.dumps(meta)}))


def load_tree(path: str | os.PathLike) -> dict[str, Any]:
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = (f.metadata() or {}).get("tree")
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises several types for a bad file
        raise UserError(f"{path}: unreadable training checkpoint ({err})") from None
    if meta is None:
        raise UserError(f"{path}: not a UniHand training checkpoint (no tree metadata)")
    return _join(json.loads(meta), tensors)


class SafetensorsCheckpointIO(CheckpointIO):
    """Save/load Lightning checkpoints without pickles."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        save_tree(checkpoint, path)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_tree(path)

    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        if os.path.exists(path):
            os.remove(path)
