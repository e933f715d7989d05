"""Lightning modules: they only drive training; the networks are plain ``nn.Module`` s (``UniHand``)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihand.diffusion.sampling import train_scheduler
from unihand.errors import UserError
from unihand.hand import load_hand_model
from unihand.pipeline import UniHand
from unihand.train.backbone import (POSE_DIMS, BackbonePretrainer, probe_loss, training_step_outputs,
                                    window_pose_targets)
from unihand.train.losses import FEATURE_BETA, reconstruction_loss
from unihand.train.masking import mask_conditions


def _warmup_linear(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Paper B.2: linear warm-up, then linear annealing to zero."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class _Base(L.LightningModule):
    def __init__(self, model: nn.Module, train_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.train_cfg = train_cfg
        self.hand = load_hand_model(None, is_right=True)
        self.gen = torch.Generator().manual_seed(int(train_cfg.get("seed", 0)))

    def configure_optimizers(self) -> Any:
        lr = float(self.train_cfg["lr"])
        fast = {id(p) for p in self.fast_parameters()}
        groups = [
            {"params": [p for p in self.parameters() if p.requires_grad and id(p) not in fast], "lr": lr},
            {"params": [p for p in self.parameters() if p.requires_grad and id(p) in fast],
             "lr": lr * float(self.train_cfg.get("vision_lr_mult", 1.0))},
        ]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr,
                                weight_decay=float(self.train_cfg.get("weight_decay", 0.0)))
        sched = _warmup_linear(opt, int(self.train_cfg.get("warmup", 100)), int(self.train_cfg["max_steps"]))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def fast_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at ``lr x train.vision_lr_mult``: the vision path (none outside the diffusion stage)."""
        model = self.model
        if not isinstance(model, UniHand) or not model.cfg.vision.enabled:
            return []
        parts: list[nn.Module] = [model.perceptron, model.init_proj, model.backbone]
        parts += [m for blk in model.denoiser.stack.blocks for m in (blk.cross_attn, blk.cross_norm) if m is not None]
        probe = getattr(self, "token_probe", None)
        parts += [probe] if probe is not None else []
        return [p for m in parts for p in m.parameters()] + [model.denoiser.vision_null]

    def _anchor_known(self, b: int, p_unknown: float) -> Tensor:
        return torch.rand(b, generator=self.gen) >= p_unknown

    def _log(self, prefix: str, losses: dict[str, Tensor], b: int) -> None:
        self.log_dict({f"{prefix}/{k}": v for k, v in losses.items()}, prog_bar=False, batch_size=b)


class VAEModule(_Base):
    """Stage 1: joint VAE with reconstruction, KL on g, latent alignment and auxiliary losses (eq. 5)."""

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def _step(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        vae, cfg, codec = self.model.vae, self.model.cfg.vae, self.model.vae.codec
        mano = batch["mano"]
        b = mano.shape[0]
        feat = codec.encode_motion(mano)
        z, mu, logvar = vae.encode_motion(feat)
        g = vae.sample_g(mu, logvar) if prefix == "train" else mu
        known = self._anchor_known(b, cfg.p_unknown_anchor).to(mano.device)
        first = torch.where(known[:, None], feat[:, 0], 0.0)

        def decode(latent: Tensor) -> Tensor:
            return vae.decode(g, latent, first, first_known=known)

        rec, parts = reconstruction_loss(codec, self.hand, decode(z), mano, cfg.w_joint_rec, batch.get("joints"))
        kl = vae.kl(mu, logvar)
        masked = mask_conditions(batch, self.gen, keep={"kp2d": 1.0, "kp3d": 1.0}, p_frame=0.5, p_drop_all=0.0)
        l_latent = torch.zeros((), device=mano.device)
        l_aux = torch.zeros((), device=mano.device)
        cond_feats = {
            "kp2d": lambda: codec.encode_kp2d(codec.rays(batch["kp2d"], batch["K"], batch["image_size"]), masked["kp2d_mask"]),
            "kp3d": lambda: codec.encode_kp3d(batch["kp3d"], masked["kp3d_mask"]),
        }
        for m, make in cond_feats.items():
            fm = masked[f"{m}_mask"].any(-1)
            zc = vae.encode_condition(m, make(), fm | ~fm.any(1, keepdim=True))
            l_latent = l_latent + F.mse_loss(zc, z.detach())
            # eq. 13: smooth-L1 between the motion decoded from z_c and the MANO parameters
            l_aux = l_aux + F.smooth_l1_loss(decode(zc), feat, beta=FEATURE_BETA)
        loss = rec + cfg.w_kl * kl + cfg.w_latent * l_latent + cfg.w_aux * l_aux
        self._log(prefix, {"loss": loss.detach(), "rec": rec.detach(), "kl": kl.detach(), "latent": l_latent.detach(),
                           "aux": l_aux.detach(), **parts}, b)
        if prefix == "train":
            self.log("loss", loss.detach(), prog_bar=True, batch_size=b)
        return loss


def token_spread(tokens: Tensor, mask: Tensor) -> Tensor:
    """How much hand tokens (B, N, d) vary over a window's frames with vision (``mask`` (B, N)): mean distance
    to the window's mean token over the mean token norm (0 when the perceptron ignores its input)."""
    w = mask[..., None].to(tokens.dtype)
    mean = (tokens * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)
    dev = ((tokens - mean).norm(dim=-1) * mask).sum()
    return dev / (tokens.norm(dim=-1) * mask).sum().clamp_min(1e-8)


class DiffusionModule(_Base):
    """Stage 2: latent denoiser with the VAE frozen; loss MSE(z0_hat, z0) + w_rec x L_rec (eq. 15).

    ``train.perceptron_aux: W`` (vision models, default 0) adds W x a per-frame pose loss on the hand
    tokens, read by a linear probe (dropped at export) with the targets of :func:`window_pose_targets`.
    Not in the paper: it gives the hand perceptron a direct signal to find each frame's hand, which the
    diffusion loss alone did not provide in CPU-length training (bench/RESULTS.md, issue 4).
    """

    def __init__(self, model: UniHand, train_cfg: dict[str, Any]) -> None:
        super().__init__(model, train_cfg)
        self.model.vae.requires_grad_(False)
        self.scheduler = train_scheduler(model.cfg.diffusion)
        self.aux_weight = float(train_cfg.get("perceptron_aux", 0.0))
        if self.aux_weight > 0:
            if not model.cfg.vision.enabled:
                raise UserError("train.perceptron_aux needs a vision model (model.vision.enabled: true)")
            self.token_probe = nn.Linear(model.cfg.diffusion.d_model, POSE_DIMS)

    def on_train_start(self) -> None:
        self.model.vae.eval()  # frozen: no dropout

    def _vision_mask(self, b: int, n: int) -> Tensor:
        """(B, N) frames whose vision is used: whole windows dropped (CFG) and random frames dropped."""
        vcfg = self.model.cfg.vision
        keep = torch.rand(b, generator=self.gen) >= vcfg.p_drop
        return keep[:, None] & (torch.rand(b, n, generator=self.gen) >= vcfg.p_frame_drop)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def _step(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        model, dcfg = self.model, self.model.cfg.diffusion
        self.model.vae.eval()
        mano = batch["mano"]
        b = mano.shape[0]
        keep = self.train_cfg.get("keep")
        masked = mask_conditions(batch, self.gen, keep=keep, p_frame=dcfg.p_frame_mask, p_drop_all=dcfg.p_drop_condition)
        with torch.no_grad():
            z0 = model.encode_latent(mano)
            cond = {k: masked[k] for k in ("kp2d", "kp2d_mask", "K", "image_size", "kp3d", "kp3d_mask", "mano", "mano_mask")}
            tokens = model.condition_tokens(cond)
        t = torch.randint(0, dcfg.train_steps, (b,), generator=self.gen).to(mano.device)
        noise = torch.randn(z0.shape, generator=self.gen).to(z0)
        z_t = self.scheduler.add_noise(z0, noise, t)
        known = self._anchor_known(b, model.cfg.vae.p_unknown_anchor).to(mano.device)
        vision = vision_mask = None
        if model.cfg.vision.enabled:
            if "frames" not in batch and "tokens" not in batch:
                raise ValueError("a vision model trains on rendered frames: set data.render_size (e.g. 224)")
            vision_mask = self._vision_mask(b, mano.shape[1]).to(mano.device)
            if "tokens" in batch:  # cached dense tokens of a frozen backbone
                vision = model.perceive(batch["tokens"], batch["token_valid"][0], mano[:, 0], known, vision_mask)
            else:
                vision = model.hand_tokens(batch["frames"], mano[:, 0], known, vision_mask)
        z0_hat = model.denoiser(z_t, t, tokens, vision, vision_mask)
        l_simple = F.mse_loss(z0_hat, z0)
        extra: dict[str, Tensor] = {}
        if vision is not None and vision_mask.any():
            extra["token_spread"] = token_spread(vision.detach(), vision_mask)
            if self.aux_weight > 0:
                extra["perceptron_aux"] = probe_loss(self.token_probe(vision[vision_mask]),
                                                     window_pose_targets(batch)[vision_mask])
        first = torch.where(known[:, None], model.vae.codec.encode_motion(mano[:, 0]), 0.0)
        feat = model.vae.decode(z0_hat[:, 0] * model.denoiser.latent_scale, z0_hat[:, 1:] * model.denoiser.latent_scale,
                                first, first_known=known)
        rec, parts = reconstruction_loss(model.vae.codec, self.hand, feat, mano, model.cfg.vae.w_joint_rec, batch.get("joints"))
        loss = l_simple + dcfg.w_rec * rec + self.aux_weight * extra.get("perceptron_aux", 0.0)
        self._log(prefix, {"loss": loss.detach(), "simple": l_simple.detach(), "rec": rec.detach(), **parts,
                           **{k: v.detach() for k, v in extra.items()}}, b)
        if prefix == "train":
            self.log("loss", loss.detach(), prog_bar=True, batch_size=b)
        return loss


class BackboneModule(_Base):
    """Stage 0: the small backbone and its pose probe on single rendered frames (:mod:`unihand.train.backbone`)."""

    model: BackbonePretrainer

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def _step(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        loss, errors = training_step_outputs(self.model, batch)
        b = batch["frames"].shape[0] * batch["frames"].shape[1]
        self._log(prefix, {"loss": loss.detach(), **errors}, b)
        if prefix == "train":
            self.log("loss", loss.detach(), prog_bar=True, batch_size=b)
            self.log("px2d", errors["px2d"], prog_bar=True, batch_size=b)
        return loss
