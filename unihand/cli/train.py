"""``unihand train vae|diffusion|backbone``: two-stage training from a YAML config (a file, or one of the
configs in the package: ``--config vae_small``) plus ``--set`` overrides (:mod:`unihand.train.run`).
Needs the ``train`` extra (Lightning, TensorBoard)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from unihand.errors import require

log = logging.getLogger("unihand")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the joint VAE, the latent diffusion model or the small vision backbone",
        description="Train one stage from a YAML config (a file of yours or a packaged config, e.g. --config "
        "vae_small) with --set overrides: the joint VAE first, then the latent diffusion model (or stage 0, the "
        "small vision backbone). Rerun with the same --out to resume. Needs the train extra: "
        "pip install 'unihand[train]'.")
    p.add_argument("stage", choices=["vae", "diffusion", "backbone"])
    p.add_argument("--config", help="YAML config: a file or a packaged config (vae_small, diffusion_small, vae_paper, "
                   "diffusion_paper, backbone_small, vision_small)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_steps=500 (repeatable)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs, export); rerun to resume")
    p.set_defaults(func=main)


def _setup_logging() -> None:
    """Each line once: our logger gets one handler; Lightning's loggers keep theirs, without its adverts."""
    import lightning.pytorch  # noqa: F401  (sets up its loggers' handlers on import)

    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    no_tips = logging.Filter()
    no_tips.filter = lambda record: not str(record.getMessage()).lstrip().startswith("\N{ELECTRIC LIGHT BULB}")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.propagate = False
        for h in logger.handlers:
            h.addFilter(no_tips)


def main(args: argparse.Namespace) -> int:
    import warnings

    for module in ("lightning", "tensorboard"):
        require(module, "train", "unihand train")
    from unihand.train.run import resolve_config, run

    _setup_logging()
    # Lightning's own use of a deprecated torch API, once per run: not the user's concern
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    cfg = resolve_config(args.stage, args.config, args.overrides)
    export = run(args.stage, cfg, Path(args.out))
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # the other ranks of a distributed run export nothing
        print(f"exported {export}")
    return 0
