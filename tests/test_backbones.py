"""Vision backbones: offline DINOv2 loading, frozen weights, letterboxing, frame conversion, errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from unihand.errors import UserError
from unihand.models.backbones import SmallBackbone, build_backbone
from unihand.models.dinov2 import load_dinov2
from unihand.models.image import IMAGENET_MEAN, IMAGENET_STD, frames_to_tensor, letterbox_pixels, valid_tokens

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14, image_size=56)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: HF offline mode and any socket connection fails."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DINOv2 saved with save_pretrained."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dinov2")
    Dinov2Model(Dinov2Config(**TINY)).save_pretrained(path)
    return path


def test_tiny_dinov2_offline_frozen_tokens(tiny_dinov2: Path, offline: None) -> None:
    backbone = build_backbone("dinov2", path=tiny_dinov2, input_size=56)
    assert (backbone.dim, backbone.patch_size, backbone.grid) == (32, 14, 4)
    assert all(not p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training and not backbone.model.training

    frames = torch.rand(3, 3, 56, 56, requires_grad=True)
    dense = backbone.encode(frames, batch_size=2)
    assert dense.tokens.shape == (3, 4, 4, 32) and dense.tokens.grad_fn is None
    assert dense.valid.all()
    # patch tokens only (CLS dropped), laid out row-major as (y, x)
    with torch.no_grad():
        hidden = backbone.model(pixel_values=letterbox_pixels(frames.detach(), 56)).last_hidden_state
    torch.testing.assert_close(dense.tokens, hidden[:, 1:].reshape(3, 4, 4, 32))


def test_dinov2_with_registers_drops_register_tokens(tmp_path: Path, offline: None) -> None:
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=4, **TINY)).save_pretrained(tmp_path)
    backbone = load_dinov2(tmp_path, input_size=56)
    frames = torch.rand(2, 3, 56, 56)
    with torch.no_grad():
        hidden = backbone.model(pixel_values=letterbox_pixels(frames, 56)).last_hidden_state
    assert hidden.shape[1] == 1 + 4 + 16
    torch.testing.assert_close(backbone.encode(frames).tokens, hidden[:, 5:].reshape(2, 4, 4, 32))


def test_letterbox_keeps_aspect_ratio_and_pads_bottom_right() -> None:
    frame = torch.rand(1, 3, 30, 60)  # wide: resized to 28 x 56, 28 rows of padding below
    pixels = letterbox_pixels(frame, 56)
    assert pixels.shape == (1, 3, 56, 56)
    assert (pixels[..., 28:, :] == 0).all()
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    expected = F.interpolate(frame, size=(28, 56), mode="bilinear", antialias=True)
    torch.testing.assert_close(pixels[..., :28, :], (expected - mean) / std)

    wide = valid_tokens(30, 60, 56, 14)  # tokens of rows 0-1 see the frame, rows 2-3 only padding
    assert wide.tolist() == [[True] * 4, [True] * 4, [False] * 4, [False] * 4]
    tall = valid_tokens(600, 200, 224, 16)  # resized to 224 x 75: columns 0-4 (x*16 < 75) see it
    assert tall.shape == (14, 14) and tall.all(0).tolist() == [True] * 5 + [False] * 9 and tall[:, :5].all()


def test_non_square_frames_token_grid(tiny_dinov2: Path, offline: None) -> None:
    backbone = load_dinov2(tiny_dinov2, input_size=56)
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 30, 60, 3), dtype=np.uint8)
    dense = backbone.encode(frames)
    assert dense.tokens.shape == (2, 4, 4, 32)
    assert dense.valid.tolist() == valid_tokens(30, 60, 56, 14).tolist()
    # frames are encoded independently of the others in the batch
    torch.testing.assert_close(backbone.encode(frames[:1]).tokens[0], dense.tokens[0])


def test_frame_conversion_grayscale_rgba_layouts() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(8, 10), dtype=np.uint8)
    rgba = rng.integers(0, 256, size=(8, 10, 4), dtype=np.uint8)
    out = frames_to_tensor([gray, gray[..., None], rgba])
    assert out.shape == (3, 3, 8, 10) and out.dtype == torch.uint8
    assert (out[0] == torch.from_numpy(gray)).all() and (out[1] == out[0]).all()
    assert (out[2] == torch.from_numpy(rgba[..., :3]).permute(2, 0, 1)).all()  # alpha dropped

    hwc = rng.random((4, 8, 10, 3), dtype=np.float32)
    chw = torch.from_numpy(hwc).permute(0, 3, 1, 2)
    torch.testing.assert_close(frames_to_tensor(hwc), frames_to_tensor(chw))
    assert frames_to_tensor(np.stack([gray, gray])).shape == (2, 3, 8, 10)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([np.zeros((8, 10, 3), np.uint8), np.zeros((8, 12, 3), np.uint8)], "frame 1 is 8x12"),
        (np.zeros((8, 10, 3), np.uint8), "one (H, W, C) image"),
        ([np.zeros((8, 10, 2), np.uint8)], "frame 0 has shape (8, 10, 2)"),
        (np.full((2, 8, 10, 3), 2.0, np.float32), "[0, 1]"),
        (np.zeros((2, 8, 10, 3), np.int32), "dtype"),
        ([], "no frames"),
    ],
)
def test_bad_frames(frames: object, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        frames_to_tensor(frames)  # type: ignore[arg-type]


def test_missing_weights_say_how_to_get_them(tmp_path: Path, offline: None) -> None:
    with pytest.raises(UserError) as err:
        load_dinov2(size="small", cache_dir=tmp_path / "empty-cache")
    text = str(err.value)
    assert "huggingface-cli download facebook/dinov2-small --local-dir PATH" in text
    assert "--backbone-path PATH" in text and "\n" not in text

    config_only = tmp_path / "config-only"
    json_config = {"model_type": "dinov2", **TINY}
    config_only.mkdir()
    (config_only / "config.json").write_text(json.dumps(json_config))
    with pytest.raises(UserError, match="no readable weights.*--backbone-path"):
        load_dinov2(config_only)


def test_path_holding_something_else(tmp_path: Path, offline: None) -> None:
    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(bert)
    with pytest.raises(UserError, match="holds a 'bert' model, not DINOv2"):
        load_dinov2(bert)
    with pytest.raises(UserError, match="no config.json"):
        load_dinov2(tmp_path)
    with pytest.raises(UserError, match="no such directory"):
        load_dinov2(tmp_path / "missing")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="expected a directory"):
        load_dinov2(tmp_path / "weights.bin")
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(UserError, match="not valid JSON"):
        load_dinov2(tmp_path)
    with pytest.raises(UserError, match="unknown DINOv2 size"):
        load_dinov2(size="tiny")


def test_untrained_dinov2_same_architecture_random_weights(tiny_dinov2: Path, offline: None) -> None:
    pretrained = load_dinov2(tiny_dinov2, input_size=56)
    untrained = load_dinov2(tiny_dinov2, untrained=True, input_size=56)
    a, b = pretrained.state_dict(), untrained.state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert not torch.equal(a["model.embeddings.patch_embeddings.projection.weight"],
                           b["model.embeddings.patch_embeddings.projection.weight"])
    assert untrained.frozen and all(not p.requires_grad for p in untrained.parameters())
    assert pretrained.fingerprint() != untrained.fingerprint()


def test_small_backbone_tokens_trainable_and_untrained() -> None:
    torch.manual_seed(0)
    small = build_backbone("small")
    assert isinstance(small, SmallBackbone) and small.grid == 14 and not small.frozen
    frames = np.random.default_rng(0).integers(0, 256, size=(1, 480, 640, 3), dtype=np.uint8)
    dense = small.encode(frames)
    assert dense.tokens.shape == (1, 14, 14, 160)
    assert dense.valid.all(1).tolist() == [True] * 11 + [False] * 3  # 168 rows of content: y*16 < 168
    dense.tokens.sum().backward()
    assert all(p.grad is not None for p in small.parameters())

    untrained = build_backbone("small", untrained=True)
    assert untrained.frozen and all(not p.requires_grad for p in untrained.parameters())
    assert untrained.encode(frames).tokens.grad_fn is None


def test_backbone_settings_and_bad_settings(tiny_dinov2: Path, offline: None) -> None:
    backbone = build_backbone("dinov2", path=tiny_dinov2, input_size=28)
    assert backbone.grid == 2 and backbone.frozen
    with pytest.raises(UserError, match="not a multiple of its patch size"):
        build_backbone("small", input_size=100)
    with pytest.raises(UserError, match="unknown backbone"):
        build_backbone("resnet")
    with pytest.raises(UserError, match="--backbone-path is for --backbone dinov2"):
        build_backbone("small", path=tiny_dinov2)
