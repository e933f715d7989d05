"""``unihand train vae|diffusion|backbone``: two-stage training from a YAML config plus ``--set`` overrides.

``backbone`` is the optional stage 0 of a vision model with the small CNN backbone (pretraining on
single rendered frames, :mod:`unihand.train.backbone`; its export goes to ``backbone: PATH`` of the
diffusion config, with ``model.vision.frozen: true``). ``init: PATH`` starts the diffusion stage from
an exported model (e.g. a vision model from the structured-condition one: its new vision parts start
at their initialisation, the cross-attention outputs at zero). ``train.feature_cache: DIR`` caches the
frozen backbone's tokens of every training window (:mod:`unihand.train.vision_cache`);
``train.vision_lr_mult`` scales the learning rate of the vision parts (default 1);
``train.perceptron_aux: W`` adds a per-frame pose loss on the hand tokens (:class:`DiffusionModule`).

Runs on CPU or GPU (bf16 mixed precision on GPU), single device or DDP/DeepSpeed by flag
(``train.devices`` per node x ``train.num_nodes``; ``train.batch_size`` is per device),
checkpoints every ``ckpt_every`` steps (safetensors, no pickles) and resumes from the last one
when rerun with the same ``--out``; logs to CSV and TensorBoard; exports the trained model as a
``UniHand`` checkpoint directory (``OUT/export``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from unihand.config import deep_update, load_yaml, model_config, parse_override, to_dict
from unihand.errors import UserError
from unihand.train.masking import DEFAULT_KEEP

log = logging.getLogger("unihand")

DEFAULTS: dict[str, Any] = {
    "preset": "small",
    "model": {},
    "data": {"name": "synthetic", "seed": 0, "frames": 48, "epoch_size": 100000, "val_size": 256, "val_seed": 999},
    "train": {
        "batch_size": 32, "max_steps": 2000, "lr": 1e-4, "warmup": 100, "weight_decay": 0.0, "seed": 0,
        "num_workers": 1, "log_every": 20, "ckpt_every": 250, "val_every": 500,
        "accelerator": "auto", "devices": 1, "num_nodes": 1, "strategy": "auto", "precision": "auto", "threads": 0,
    },
    "vae": None,  # diffusion stage: path of the exported VAE checkpoint
    "init": None,  # diffusion stage: exported model to start from (its VAE is used when vae is unset)
    "backbone": None,  # diffusion stage: pretrained small backbone (`unihand train backbone` export)
}


def resolve_config(stage: str, config: str | None, overrides: list[str]) -> dict[str, Any]:
    cfg = dict(DEFAULTS)
    if config:
        cfg = deep_update(cfg, load_yaml(config))
    for text in overrides:
        cfg = deep_update(cfg, parse_override(text))
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise UserError(f"unknown top-level config key(s): {', '.join(sorted(unknown))} (known: {', '.join(DEFAULTS)})")
    if stage == "diffusion" and not (cfg.get("vae") or cfg.get("init")):
        raise UserError("diffusion training needs the trained VAE: set vae: PATH in the config or --set vae=PATH")
    _check_train(cfg["train"])
    return cfg


def _check_train(tc: dict[str, Any]) -> None:
    """Fail early, naming the field, on ``train`` values that would otherwise fail deep inside a step."""
    keep = tc.get("keep")
    if keep is not None:
        if not isinstance(keep, dict) or set(keep) - set(DEFAULT_KEEP):
            raise UserError(f"train.keep must map some of {', '.join(DEFAULT_KEEP)} to probabilities, got {keep!r} "
                            "(YAML needs a space after each colon: \"{kp2d: 0.5}\")")
        bad = {m: p for m, p in keep.items() if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1}
        if bad:
            raise UserError(f"train.keep: probabilities must be numbers in [0, 1], got {bad!r}")
    nodes = tc.get("num_nodes", 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise UserError(f"train.num_nodes must be an integer >= 1, got {nodes!r}")
    for key in ("perceptron_aux", "vision_lr_mult"):
        value = tc.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise UserError(f"train.{key} must be a number >= 0, got {value!r}")


def build_model(stage: str, cfg: dict[str, Any]) -> Any:
    from unihand.pipeline import UniHand

    if stage == "vae":
        return UniHand(model_config(cfg["preset"], cfg["model"]))
    if stage == "backbone":
        from unihand.train.backbone import build_pretrainer

        return build_pretrainer(model_config(cfg["preset"], cfg["model"]))
    source = cfg["vae"] or cfg["init"]
    vae = UniHand.from_pretrained(source)
    mcfg = model_config(cfg["preset"], deep_update(to_dict(vae.cfg), cfg["model"]))
    if to_dict(mcfg.vae) != to_dict(vae.cfg.vae):
        raise UserError(f"{source}: the VAE checkpoint's architecture differs from the configured one")
    model = UniHand(mcfg)
    model.vae.load_state_dict(vae.vae.state_dict())
    if cfg["init"]:
        init = vae if source == cfg["init"] else UniHand.from_pretrained(cfg["init"])
        model.load_weights(init.state_dict(), cfg["init"], partial=True)  # the rest keeps its initialisation
        fresh = [k for k in model.state_dict() if k not in init.state_dict()]
        log.info("initialised from %s; %d tensors start fresh (%s...)", cfg["init"], len(fresh), ", ".join(fresh[:3]))
    if cfg["backbone"]:
        from unihand.train.backbone import load_backbone

        if not mcfg.vision.enabled or mcfg.vision.backbone != "small":
            raise UserError("backbone: PATH is for a vision model with the small backbone (model.vision)")
        load_backbone(model.backbone, cfg["backbone"])
    return model


def run(stage: str, cfg: dict[str, Any], out: Path) -> Path:
    """Train one stage; returns the exported checkpoint directory."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from torch.utils.data import DataLoader

    from unihand.data.io import atomic_write
    from unihand.train.checkpoint_io import SafetensorsCheckpointIO
    from unihand.train.data import ShardSampler, build_dataset, fit_statistics
    from unihand.train.modules import BackboneModule, DiffusionModule, VAEModule

    tc = cfg["train"]
    if tc["threads"]:
        torch.set_num_threads(int(tc["threads"]))
    L.seed_everything(int(tc["seed"]), workers=True, verbose=False)
    out.mkdir(parents=True, exist_ok=True)
    # every rank of a distributed run writes it (the same text, atomically: never half-written)
    atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(json.dumps(cfg, indent=2)))
    model = build_model(stage, cfg)
    if stage == "backbone":
        from unihand.train.backbone import frame_datasets

        (train_set, val_set), sampler = frame_datasets(cfg["data"], tc), None
    else:
        train_set, sampler = build_dataset(cfg["data"], split="train")
        val_set, _ = build_dataset(cfg["data"], split="val")
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if tc.get("feature_cache"):
        from unihand.train.vision_cache import CachedTokenWindows

        if stage != "diffusion" or not model.cfg.vision.enabled:
            raise UserError("train.feature_cache is for the diffusion stage of a vision model")
        train_set, val_set = (CachedTokenWindows(d, model.backbone, tc["feature_cache"]) for d in (train_set, val_set))
        for d in (train_set, val_set):
            d.prepare()
    if not last.exists() and stage != "backbone" and not cfg.get("init"):
        fit_statistics(model, train_set, stage)  # fresh run (restored from the checkpoint on resume)
    module = {"vae": VAEModule, "diffusion": DiffusionModule, "backbone": BackboneModule}[stage](model, tc)
    gpu = torch.cuda.is_available() and tc["accelerator"] in ("auto", "gpu", "cuda")
    precision = tc["precision"] if tc["precision"] != "auto" else ("bf16-mixed" if gpu else "32-true")
    strategy = tc["strategy"]
    plugins = [] if strategy.startswith("deepspeed") else [SafetensorsCheckpointIO()]
    trainer = L.Trainer(
        accelerator=tc["accelerator"], devices=tc["devices"], num_nodes=int(tc["num_nodes"]),
        strategy=strategy, precision=precision,
        max_steps=int(tc["max_steps"]), log_every_n_steps=int(tc["log_every"]),
        val_check_interval=int(tc["val_every"]), check_val_every_n_epoch=None, limit_val_batches=4,
        callbacks=[
            ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=int(tc["ckpt_every"]), save_last=True, save_top_k=0),
            LearningRateMonitor(logging_interval="step"),
            TQDMProgressBar(refresh_rate=10),
        ],
        logger=[CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tb")],
        plugins=plugins, default_root_dir=out, enable_model_summary=False, use_distributed_sampler=False,
    )
    loader_kw = dict(batch_size=int(tc["batch_size"]), num_workers=int(tc["num_workers"]),
                     persistent_workers=int(tc["num_workers"]) > 0)
    # Each rank reads its own shard of the windows, in the single-process order (ShardSampler; Lightning's
    # DistributedSampler, turned off with use_distributed_sampler=False, would shuffle the training set).
    trainer.fit(
        module,
        DataLoader(train_set, sampler=ShardSampler(len(train_set), sampler), drop_last=True, **loader_kw),
        DataLoader(val_set, sampler=ShardSampler(len(val_set)), **loader_kw),
        ckpt_path=str(last) if last.exists() else None,
    )
    export = out / "export"
    if trainer.is_global_zero and stage == "backbone":
        from unihand.train.backbone import BACKBONE_FILE, save_backbone

        save_backbone(model.backbone, export / BACKBONE_FILE)
        (export / "training.json").write_text(json.dumps({"stage": stage, "config": cfg, "steps": trainer.global_step}))
        log.info("exported %s", export)
    elif trainer.is_global_zero:
        model.save_pretrained(export, stage=stage, extra={"training": {"stage": stage, "config": cfg,
                                                                        "steps": trainer.global_step}})
        log.info("exported %s", export)
    return export


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the joint VAE, the latent diffusion model or the small vision backbone",
                       description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=["vae", "diffusion", "backbone"])
    p.add_argument("--config", help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_steps=500 (repeatable)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs, export); rerun to resume")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = resolve_config(args.stage, args.config, args.overrides)
    export = run(args.stage, cfg, Path(args.out))
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # the other ranks of a distributed run export nothing
        print(f"exported {export}")
    return 0
