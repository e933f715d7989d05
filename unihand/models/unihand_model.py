"""``UniHandModel``: the joint VAE and the latent denoiser (and, for vision checkpoints, the frozen
backbone and the hand perceptron) as one ``nn.Module``, saved as ``config.json`` + ``model.safetensors``.

It holds the networks and what turns data into their latents: the motion codec, the condition
encoders fused with null tokens, the hand tokens of full frames. Sampling (schedulers, guidance,
windows) is the pipeline's (:mod:`unihand.pipeline`). Checkpoints are directories, never pickles.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from unihand.config import ModelConfig, from_dict, to_dict
from unihand.errors import UserError
from unihand.files import atomic_write
from unihand.models.backbones import build_backbone
from unihand.models.denoiser import MODALITIES, Denoiser
from unihand.models.joint_vae import JointVAE
from unihand.models.perceptron import HandPerceptron
from unihand.models.quantize import MODES as QUANTIZE_MODES
from unihand.models.quantize import quantize as quantize_model

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


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


def resolve_checkpoint(path: str | Path | None) -> Path:
    """The checkpoint directory of ``path``: the shipped model for ``None``, a local directory as it is,
    else a Hugging Face model id (``owner/name``) looked up in the local cache only (never downloaded)."""
    if path is None:
        return shipped_checkpoint()
    local = Path(path)
    if local.exists() or str(path).count("/") != 1 or str(path).startswith((".", "/", "~")):
        return local
    from huggingface_hub import snapshot_download  # a dependency of diffusers
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(str(path), local_files_only=True))
    except HFValidationError:  # not a model id: a local path that does not exist
        return local
    except LocalEntryNotFoundError:
        raise UserError(f"{path}: neither a checkpoint directory nor a model in the local Hugging Face cache "
                        f"(nothing is downloaded at run time: `hf download {path}` on a connected machine)") from None


class UniHandModel(nn.Module):
    """Joint VAE + latent denoiser (+ frozen backbone and hand perceptron for vision checkpoints).

    A plain ``nn.Module``: Lightning only drives its training (:mod:`unihand.train`), the pipeline
    (:class:`unihand.pipeline.UniHandPipeline`) samples with it."""

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
    ) -> "UniHandModel":
        """Load a checkpoint: a directory, a model id already in the local Hugging Face cache (offline,
        :func:`resolve_checkpoint`), or ``None`` for the shipped small model.

        ``backbone_path``: where the frozen DINOv2 weights of a vision checkpoint live on this machine
        (they are never stored in our checkpoints). ``quantize="int8"``: faster CPU inference
        (:mod:`unihand.models.quantize`).
        """
        if quantize is not None and quantize not in QUANTIZE_MODES:
            raise UserError(f"unknown quantization '{quantize}' (choose from {', '.join(QUANTIZE_MODES)})")
        if quantize is not None and str(device).split(":")[0] != "cpu":
            raise UserError(f"quantize={quantize!r} runs on the CPU only, not on {device}")
        device = check_device(device)
        path = resolve_checkpoint(path)
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


def _attendable(frame_mask: Tensor) -> Tensor:
    """Attention validity: a sample with no valid frame attends everywhere (its output is nulled)."""
    return frame_mask | ~frame_mask.any(dim=1, keepdim=True)
