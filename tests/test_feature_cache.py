"""Feature cache: reuse without running the backbone, invalidation on changed frames or backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unihand.models.backbones import SmallBackbone, VisionBackbone
from unihand.models.feature_cache import FeatureCache


def counted(backbone: VisionBackbone) -> list[int]:
    """Number of frames the backbone has run on, appended per forward call."""
    calls: list[int] = []
    backbone.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    return calls


@pytest.fixture
def backbone() -> SmallBackbone:
    torch.manual_seed(0)
    return SmallBackbone(dim=32, input_size=64, blocks=1).freeze()


@pytest.fixture
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 48, 64, 3), dtype=np.uint8)


def test_second_call_reuses_the_entry(tmp_path: Path, backbone: SmallBackbone, frames: np.ndarray) -> None:
    cache = FeatureCache(tmp_path)
    calls = counted(backbone)
    first = cache.get_or_compute(frames, backbone, batch_size=2)
    assert sum(calls) == 5 and len(calls) == 3
    second = cache.get_or_compute(frames, backbone)
    third = cache.get_or_compute(list(frames), backbone)  # same frames as a list: same entry
    assert sum(calls) == 5
    torch.testing.assert_close(second.tokens, first.tokens, rtol=0, atol=0)
    torch.testing.assert_close(third.tokens, first.tokens, rtol=0, atol=0)
    assert torch.equal(second.valid, first.valid) and second.valid.shape == (4, 4)
    torch.testing.assert_close(first.tokens, backbone.encode(frames).tokens)
    expected = cache.path(cache.key(torch.from_numpy(frames).permute(0, 3, 1, 2), backbone))
    assert list(tmp_path.iterdir()) == [expected]


def test_changed_frame_or_backbone_recomputes(tmp_path: Path, backbone: SmallBackbone, frames: np.ndarray) -> None:
    cache = FeatureCache(tmp_path)
    calls = counted(backbone)
    base = cache.get_or_compute(frames, backbone)
    n = len(calls)

    edited = frames.copy()
    edited[3, 10, 10, 0] ^= 1  # one pixel of one frame
    cache.get_or_compute(edited, backbone)
    assert len(calls) == n + 1
    n = len(calls)

    with torch.no_grad():
        backbone.stem[0].weight[0, 0, 0, 0] += 0.5  # same backbone object, new weights
    changed = cache.get_or_compute(frames, backbone)
    assert len(calls) == n + 1 and not torch.allclose(changed.tokens, base.tokens)
    n = len(calls)
    cache.get_or_compute(frames, backbone)
    assert len(calls) == n  # and the new entry is reused

    torch.manual_seed(0)
    bigger_input = SmallBackbone(dim=32, input_size=96, blocks=1).freeze()
    other_calls = counted(bigger_input)
    assert cache.get_or_compute(frames, bigger_input).tokens.shape == (5, 6, 6, 32) and len(other_calls) == 1
    assert len(list(tmp_path.glob("*.safetensors"))) == 4 and not list(tmp_path.glob(".*"))


def test_corrupt_entry_is_recomputed(tmp_path: Path, backbone: SmallBackbone, frames: np.ndarray) -> None:
    cache = FeatureCache(tmp_path)
    calls = counted(backbone)
    base = cache.get_or_compute(frames, backbone)
    (entry,) = tmp_path.glob("*.safetensors")
    entry.write_bytes(b"not a safetensors file")
    again = cache.get_or_compute(frames, backbone)
    assert len(calls) == 2
    torch.testing.assert_close(again.tokens, base.tokens, rtol=0, atol=0)
    cache.get_or_compute(frames, backbone)
    assert len(calls) == 2


def test_half_precision_storage_gives_the_same_numbers_both_ways(
    tmp_path: Path, backbone: SmallBackbone, frames: np.ndarray
) -> None:
    cache = FeatureCache(tmp_path, dtype=torch.float16)
    first = cache.get_or_compute(frames, backbone)
    second = cache.get_or_compute(frames, backbone)
    assert first.tokens.dtype == second.tokens.dtype == torch.float32
    torch.testing.assert_close(second.tokens, first.tokens, rtol=0, atol=0)
    torch.testing.assert_close(first.tokens, backbone.encode(frames).tokens, rtol=1e-2, atol=1e-2)
    assert not cache.key(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), backbone) == FeatureCache(tmp_path).key(
        torch.zeros(1, 3, 8, 8, dtype=torch.uint8), backbone
    )
