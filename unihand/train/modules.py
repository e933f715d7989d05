"""Lightning modules: they only drive training; the networks are plain ``nn.Module`` s (``UniHandModel``)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihand.diffusion.sampling import train_scheduler
from unihand.errors import UserError
from unihand.hand import load_hand_model
from unihand.models.unihand_model import UniHandModel
from unihand.train.backbone import (POSE_DIMS, BackbonePretrainer, probe_loss, training_step_outputs,
                                    window_pose_targets)
from unihand.train.losses import FEATURE_BETA, reconstruction_loss
from unihand.train.masking import BatchRandom, mask_conditions, step_seed


def _warmup_linear(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Paper B.2: linear warm-up, then linear annealing to zero."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class _Base(L.LightningModule):
    """Shared by the stages. Distributed training (DDP over ``train.devices`` x ``train.num_nodes`` processes):

    - every trainable parameter is used in every step's loss (DDP runs without
      ``find_unused_parameters``): a stage freezes the parts of the model it does not train;
    - each step's masks, anchors, timesteps and noise come from :meth:`_random`: a function of
      ``train.seed``, the step and a window's row in the global batch (:class:`BatchRandom`), so
      ranks never share draws and W devices with batch B draw what one device with batch W x B does;
    - logged training losses are the means over the global batch (one all-reduce per step).
    """

    def __init__(self, model: nn.Module, train_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.train_cfg = train_cfg
        self.hand = load_hand_model(None, is_right=True)
        self.seed = int(train_cfg.get("seed", 0))
        self.rnd = BatchRandom(torch.Generator().manual_seed(self.seed))  # replaced at every step (_random)
        self._plain_steps = 0

    def _shard(self) -> tuple[int, int]:
        """(global rank, world size); (0, 1) on one device or outside a ``Trainer``."""
        trainer = self._trainer
        return (0, 1) if trainer is None else (int(trainer.global_rank), int(trainer.world_size))

    def _random(self, prefix: str, batch_idx: int) -> BatchRandom:
        """The draws of one step: training step ``global_step`` (the same after a resume; outside a Trainer,
        in a plain loop, the number of training steps so far), or validation batch ``batch_idx`` (the same
        masks at every validation)."""
        if prefix == "train":
            index, stream = (self.global_step if self._trainer is not None else self._plain_steps), 0
            self._plain_steps += 1
        else:
            index, stream = batch_idx, 1
        return BatchRandom(torch.Generator().manual_seed(step_seed(self.seed, index, stream)), *self._shard())

    def on_train_start(self) -> None:
        rank = self._shard()[0]
        if rank:  # dropout draws from the global RNG, which seed_everything seeded alike on every rank
            torch.manual_seed(self.seed + rank)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val", batch_idx)

    def _step(self, batch: dict[str, Tensor], prefix: str, batch_idx: int = 0) -> Tensor:
        raise NotImplementedError

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
        if not isinstance(model, UniHandModel) or not model.cfg.vision.enabled:
            return []
        parts: list[nn.Module] = [model.perceptron, model.init_proj, model.backbone]
        parts += [m for blk in model.denoiser.stack.blocks for m in (blk.cross_attn, blk.cross_norm) if m is not None]
        probe = getattr(self, "token_probe", None)
        parts += [probe] if probe is not None else []
        return [p for m in parts for p in m.parameters()] + [model.denoiser.vision_null]

    def _anchor_known(self, b: int, p_unknown: float) -> Tensor:
        return self.rnd.rand(b) >= p_unknown

    def _log(self, prefix: str, losses: dict[str, Tensor], b: int, bar: tuple[str, ...] = ("loss",)) -> None:
        """Log ``prefix/name`` (and the names in ``bar`` on the progress bar, training only).

        Under DDP the training values are averaged over the ranks in one all-reduce (the global batch's
        losses: every rank has ``b`` windows and the same names), validation ones at the epoch's end.
        """
        world = self._shard()[1]
        if prefix == "train" and world > 1:
            names = list(losses)
            stacked = torch.stack([losses[k].detach().float() for k in names])
            mean = self.trainer.strategy.reduce(stacked, reduce_op="mean")
            losses = dict(zip(names, mean.unbind()))
        self.log_dict({f"{prefix}/{k}": v for k, v in losses.items()}, prog_bar=False, batch_size=b,
                      sync_dist=prefix == "val" and world > 1)
        if prefix == "train":
            for k in bar:
                self.log(k, losses[k], prog_bar=True, batch_size=b)


class VAEModule(_Base):
    """Stage 1: joint VAE with reconstruction, KL on g, latent alignment and auxiliary losses (eq. 5).

    Only the VAE trains: the denoiser (and a vision model's perceptron and backbone) are frozen, as
    they take no part in this stage's loss (DDP requires every trainable parameter to get a gradient).
    """

    def __init__(self, model: UniHandModel, train_cfg: dict[str, Any]) -> None:
        super().__init__(model, train_cfg)
        self.model.requires_grad_(False)
        self.model.vae.requires_grad_(True)

    def _step(self, batch: dict[str, Tensor], prefix: str, batch_idx: int = 0) -> Tensor:
        vae, cfg, codec = self.model.vae, self.model.cfg.vae, self.model.vae.codec
        self.rnd = self._random(prefix, batch_idx)
        mano = batch["mano"]
        b = mano.shape[0]
        feat = codec.encode_motion(mano)
        z, mu, logvar = vae.encode_motion(feat)
        # JointVAE.sample_g with the step's per-window noise (its randn_like would differ across device counts)
        g = mu + self.rnd.normal_rows(b, mu.shape[-1]).to(mu) * (0.5 * logvar).exp() if prefix == "train" else mu
        known = self._anchor_known(b, cfg.p_unknown_anchor).to(mano.device)
        first = torch.where(known[:, None], feat[:, 0], 0.0)

        def decode(latent: Tensor) -> Tensor:
            return vae.decode(g, latent, first, first_known=known)

        rec, parts = reconstruction_loss(codec, self.hand, decode(z), mano, cfg.w_joint_rec, batch.get("joints"))
        kl = vae.kl(mu, logvar)
        masked = mask_conditions(batch, self.rnd, keep={"kp2d": 1.0, "kp3d": 1.0}, p_frame=0.5, p_drop_all=0.0)
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
    diffusion loss alone did not provide in CPU-length training (bench/RESULTS.md, "Vision").
    """

    def __init__(self, model: UniHandModel, train_cfg: dict[str, Any]) -> None:
        super().__init__(model, train_cfg)
        self.model.vae.requires_grad_(False)
        self.scheduler = train_scheduler(model.cfg.diffusion)
        self.register_buffer("t_weight", min_snr_weights(self.scheduler.alphas_cumprod,
                                                         float(train_cfg.get("min_snr_gamma", 0.0))), persistent=False)
        self.aux_weight = float(train_cfg.get("perceptron_aux", 0.0))
        if self.aux_weight > 0:
            if not model.cfg.vision.enabled:
                raise UserError("train.perceptron_aux needs a vision model (model.vision.enabled: true)")
            self.token_probe = nn.Linear(model.cfg.diffusion.d_model, POSE_DIMS)

    def on_train_start(self) -> None:
        super().on_train_start()
        self.model.vae.eval()  # frozen: no dropout

    def _vision_mask(self, b: int, n: int) -> Tensor:
        """(B, N) frames whose vision is used: whole windows dropped (CFG) and random frames dropped."""
        vcfg = self.model.cfg.vision
        keep = self.rnd.rand(b) >= vcfg.p_drop
        return keep[:, None] & (self.rnd.rand(b, n) >= vcfg.p_frame_drop)

    def _step(self, batch: dict[str, Tensor], prefix: str, batch_idx: int = 0) -> Tensor:
        model, dcfg = self.model, self.model.cfg.diffusion
        self.model.vae.eval()
        self.rnd = self._random(prefix, batch_idx)
        mano = batch["mano"]
        b = mano.shape[0]
        keep = self.train_cfg.get("keep")
        masked = mask_conditions(batch, self.rnd, keep=keep, p_frame=dcfg.p_frame_mask, p_drop_all=dcfg.p_drop_condition)
        with torch.no_grad():
            z0 = model.encode_latent(mano)
        # Outside no_grad: the frozen VAE's condition encoders build no graph, but the denoiser's learnable null
        # tokens (fused in where a modality or frame is missing, and always in the global token's slot) do.
        cond = {k: masked[k] for k in ("kp2d", "kp2d_mask", "K", "image_size", "kp3d", "kp3d_mask", "mano", "mano_mask")}
        tokens = model.condition_tokens(cond)
        t = self.rnd.randint(0, dcfg.train_steps, b).to(mano.device)
        noise = self.rnd.normal_rows(b, *z0.shape[1:]).to(z0)
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
        if self.t_weight is None:
            l_simple = F.mse_loss(z0_hat, z0)
        else:  # per-window latent error, weighted by its timestep's min(SNR, gamma) (mean weight 1)
            l_simple = (self.t_weight[t] * (z0_hat - z0).pow(2).flatten(1).mean(1)).mean()
        extra: dict[str, Tensor] = {}
        if vision is not None:  # the same names on every rank and step (0 for a batch without vision)
            extra["token_spread"] = token_spread(vision.detach(), vision_mask)
            if self.aux_weight > 0:  # over every frame, masked: the probe is in the graph even when no frame has vision
                extra["perceptron_aux"] = probe_loss(self.token_probe(vision), window_pose_targets(batch), vision_mask)
        first = torch.where(known[:, None], model.vae.codec.encode_motion(mano[:, 0]), 0.0)
        feat = model.vae.decode(z0_hat[:, 0] * model.denoiser.latent_scale, z0_hat[:, 1:] * model.denoiser.latent_scale,
                                first, first_known=known)
        rec, parts = reconstruction_loss(model.vae.codec, self.hand, feat, mano, model.cfg.vae.w_joint_rec, batch.get("joints"))
        loss = l_simple + dcfg.w_rec * rec + self.aux_weight * extra.get("perceptron_aux", 0.0)
        self._log(prefix, {"loss": loss.detach(), "simple": l_simple.detach(), "rec": rec.detach(), **parts,
                           **{k: v.detach() for k, v in extra.items()}}, b)
        return loss


def min_snr_weights(alphas_cumprod: Tensor, gamma: float) -> Tensor | None:
    """Min-SNR-gamma loss weights per training timestep for a clean-sample (x0) prediction (Hang et al.,
    ICCV 2023): ``min(SNR_t, gamma)``, normalised to mean 1 over the timesteps so the learning rate keeps
    its meaning; None for ``gamma = 0`` (uniform, the paper's)."""
    if gamma <= 0:
        return None
    snr = alphas_cumprod / (1 - alphas_cumprod)
    w = torch.clamp(snr, max=gamma).float()
    return w / w.mean()


class BackboneModule(_Base):
    """Stage 0: the small backbone and its pose probe on single rendered frames (:mod:`unihand.train.backbone`)."""

    model: BackbonePretrainer

    def _step(self, batch: dict[str, Tensor], prefix: str, batch_idx: int = 0) -> Tensor:
        loss, errors = training_step_outputs(self.model, batch)
        b = batch["frames"].shape[0] * batch["frames"].shape[1]
        self._log(prefix, {"loss": loss.detach(), **errors}, b, bar=("loss", "px2d"))
        return loss
