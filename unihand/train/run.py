"""Training runs (``unihand train vae|diffusion|backbone``, :mod:`unihand.cli.train`): two-stage training
from a YAML config plus ``--set`` overrides.

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
``UniHandModel`` checkpoint directory (``OUT/export``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from unihand.config import deep_update, load_yaml, model_config, parse_override, to_dict, typed
from unihand.errors import UserError
from unihand.train.config import RunConfig, as_dict

log = logging.getLogger("unihand")

def resolve_config(stage: str, config: str | None, overrides: list[str]) -> dict[str, Any]:
    """The run's typed configuration (defaults < YAML < ``--set``) as the plain dict the trainer reads."""
    cfg: dict[str, Any] = load_yaml(config) if config else {}
    for text in overrides:
        cfg = deep_update(cfg, parse_override(text))
    where = f"{config} (with --set): " if config and overrides else f"{config}: " if config else "--set: "
    run_cfg = typed(RunConfig, cfg, where)
    if stage == "diffusion" and not (run_cfg.vae or run_cfg.init):
        raise UserError("diffusion training needs the trained VAE: set vae: PATH in the config or --set vae=PATH")
    return as_dict(run_cfg)


def build_model(stage: str, cfg: dict[str, Any]) -> Any:
    from unihand.models.unihand_model import UniHandModel

    if stage == "vae":
        return UniHandModel(model_config(cfg["preset"], cfg["model"]))
    if stage == "backbone":
        from unihand.train.backbone import build_pretrainer

        return build_pretrainer(model_config(cfg["preset"], cfg["model"]))
    source = cfg["vae"] or cfg["init"]
    vae = UniHandModel.from_pretrained(source)
    mcfg = model_config(cfg["preset"], deep_update(to_dict(vae.cfg), cfg["model"]))
    if to_dict(mcfg.vae) != to_dict(vae.cfg.vae):
        raise UserError(f"{source}: the VAE checkpoint's architecture differs from the configured one")
    model = UniHandModel(mcfg)
    model.vae.load_state_dict(vae.vae.state_dict())
    if cfg["init"]:
        init = vae if source == cfg["init"] else UniHandModel.from_pretrained(cfg["init"])
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
    """Train one stage; returns the exported checkpoint directory. The progress bar shows on a terminal;
    elsewhere (a log file) one line says what was trained when the run ends."""
    import sys
    import time

    from unihand.errors import require

    for module in ("lightning", "tensorboard"):
        require(module, "train", "training")
    import lightning as L
    from lightning.pytorch.callbacks import EMAWeightAveraging, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from torch.utils.data import DataLoader

    from unihand.files import atomic_write, clean_stale_temps
    from unihand.train.checkpoint_io import SafetensorsCheckpointIO
    from unihand.train.data import ShardSampler, build_dataset, fit_statistics
    from unihand.train.modules import BackboneModule, DiffusionModule, VAEModule
    from unihand.train.stream import StreamPosition

    tc = cfg["train"]
    if tc["threads"]:
        torch.set_num_threads(int(tc["threads"]))
    L.seed_everything(int(tc["seed"]), workers=True, verbose=False)
    check_run_dir(out)
    ckpt_dir = out / "checkpoints"
    for folder in (out, ckpt_dir, out / "export"):  # temp files a killed earlier run left behind
        for stale in clean_stale_temps(folder):
            log.info("removed %s (left by an interrupted run)", stale)
    # every rank of a distributed run writes it (the same text, atomically: never half-written)
    atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(json.dumps(cfg, indent=2)))
    model = build_model(stage, cfg)
    if stage == "backbone":
        from unihand.train.backbone import frame_datasets

        (train_set, val_set), sampler = frame_datasets(cfg["data"], tc), None
    else:
        train_set, sampler = build_dataset(cfg["data"], split="train")
        val_set, _ = build_dataset(cfg["data"], split="val")
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
    train_sampler = ShardSampler(len(train_set), sampler)
    bar = sys.stderr.isatty()
    trainer = L.Trainer(
        accelerator=tc["accelerator"], devices=tc["devices"], num_nodes=int(tc["num_nodes"]),
        strategy=strategy, precision=precision,
        max_steps=int(tc["max_steps"]), log_every_n_steps=int(tc["log_every"]),
        val_check_interval=int(tc["val_every"]), check_val_every_n_epoch=None, limit_val_batches=4,
        callbacks=[
            ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=int(tc["ckpt_every"]), save_last=True, save_top_k=0),
            LearningRateMonitor(logging_interval="step"),
            *([TQDMProgressBar(refresh_rate=10)] if bar else []),
            StreamPosition(train_sampler, int(tc["batch_size"])),
            # the moving average is what validation sees and what is exported
            *([EMAWeightAveraging(decay=float(tc["ema"]))] if tc["ema"] else []),
        ],
        logger=[CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tb")],
        plugins=plugins, default_root_dir=out, enable_model_summary=False, use_distributed_sampler=False,
        enable_progress_bar=bar,
    )
    loader_kw = dict(batch_size=int(tc["batch_size"]), num_workers=int(tc["num_workers"]),
                     persistent_workers=int(tc["num_workers"]) > 0)
    # Each rank reads its own shard of the windows, in the single-process order (ShardSampler; Lightning's
    # DistributedSampler, turned off with use_distributed_sampler=False, would shuffle the training set).
    t0 = time.perf_counter()
    trainer.fit(
        module,
        DataLoader(train_set, sampler=train_sampler, drop_last=True, **loader_kw),
        DataLoader(val_set, sampler=ShardSampler(len(val_set)), **loader_kw),
        ckpt_path=str(last) if last.exists() else None,
    )
    if not bar and trainer.is_global_zero:
        log.info("train %s: step %d of %d in %.0f s", stage, trainer.global_step, int(tc["max_steps"]),
                 time.perf_counter() - t0)
    export = out / "export"
    if trainer.is_global_zero and stage == "backbone":
        from unihand.train.backbone import BACKBONE_FILE, save_backbone

        save_backbone(model.backbone, export / BACKBONE_FILE)
        (export / "training.json").write_text(json.dumps({"stage": stage, "config": cfg, "steps": trainer.global_step}))
    elif trainer.is_global_zero:
        model.save_pretrained(export, stage=stage, extra={"training": {"stage": stage, "config": cfg,
                                                                        "steps": trainer.global_step}})
    return export


def check_run_dir(out: Path) -> None:
    """Create the run folder, or a one-line error when it cannot be one (a file, unwritable)."""
    import tempfile

    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a folder (give a run folder)")
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UserError(f"--out {out}: cannot write the run there ({err.strerror or err})") from None
