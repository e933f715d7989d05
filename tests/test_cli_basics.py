"""The ``unihand`` command line itself: ``--version``, ``python -m unihand``, unknown subcommands."""

import subprocess
import sys

import pytest

import unihand
from unihand.cli import main, version


def test_version_matches_the_package(capsys) -> None:
    assert version() == unihand.__version__ == "0.1.0"
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"unihand {unihand.__version__}"


def test_version_falls_back_to_the_source_tree(monkeypatch) -> None:
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert version() == unihand.__version__


def test_python_m_unihand_help_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "unihand", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: unihand")
    for name in ("demo", "estimate", "generate", "fk", "metrics"):
        assert name in out.stdout
    out = subprocess.run([sys.executable, "-m", "unihand", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"unihand {unihand.__version__}"


def test_unknown_subcommand_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_subcommand_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_training_configs_ship_inside_the_package(tmp_path, monkeypatch) -> None:
    """``--config vae_small`` (or the former ``configs/vae_small.yaml``) finds the packaged config from any
    folder; a file of the user's wins; an unknown name lists the packaged ones."""
    import pytest

    from unihand.config import config_path, load_yaml, packaged_configs
    from unihand.errors import UserError

    monkeypatch.chdir(tmp_path)
    assert {"vae_small", "diffusion_small", "vae_paper", "diffusion_paper"} <= set(packaged_configs())
    assert config_path("vae_small") == config_path("configs/vae_small.yaml") == packaged_configs()["vae_small"]
    assert load_yaml("diffusion_small")["vae"] == "runs/vae_small/export"
    (tmp_path / "vae_small.yaml").write_text("preset: paper\n")
    assert load_yaml("vae_small.yaml") == {"preset": "paper"}
    with pytest.raises(UserError, match="packaged configs: .*vae_small"):
        config_path("nosuch")


def test_help_imports_no_torch_and_shows_plain_words() -> None:
    """``unihand --help`` and every ``unihand CMD --help`` build their parser without torch (fast start), and the
    help a user reads has no RST markup."""
    from unihand.cli import SUBCOMMANDS

    code = ("import sys, contextlib, io\n"
            "from unihand.cli import main\n"
            "for argv in [['--help']] + [[c, '--help'] for c in sys.argv[1:]]:\n"
            "    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
            "        main(argv)\n"
            "    assert '``' not in out.getvalue() and ':mod:' not in out.getvalue(), (argv, out.getvalue())\n"
            "    assert out.getvalue().startswith('usage: unihand'), argv\n"
            "heavy = [m for m in ('torch', 'scipy', 'cv2', 'diffusers', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code, *SUBCOMMANDS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_names_and_defaults_in_the_help_are_the_librarys() -> None:
    """The CLI spells some names and defaults out so that --help imports no torch: they must be the library's."""
    from unihand.cli import flags
    from unihand.data.synthetic.camera import CAMERA_PRESETS
    from unihand.data.synthetic.motion import ACTIVITIES
    from unihand.data.synthetic.world import TRAIN_SEED
    from unihand.diffusion.sampling import SCHEDULERS
    from unihand.eval.evaluate import DATASETS
    from unihand.geometry.camera import DEFAULT_FOV_DEG
    from unihand.video.conditions import CONF_THRESHOLD

    assert flags.SCHEDULER_NAMES == tuple(SCHEDULERS)
    assert flags.DEFAULT_FOV_DEG == DEFAULT_FOV_DEG and flags.CONF_THRESHOLD == CONF_THRESHOLD
    assert flags.DATASET_NAMES == tuple(DATASETS)
    assert sorted(flags.CAMERA_PRESET_NAMES) == sorted(CAMERA_PRESETS)
    assert flags.ACTIVITY_NAMES == tuple(ACTIVITIES) and flags.TRAIN_SEED == TRAIN_SEED


def test_a_missing_optional_dependency_names_its_extra(monkeypatch) -> None:
    from unihand.errors import UserError, require

    monkeypatch.setitem(sys.modules, "lightning", None)  # import lightning -> ImportError
    with pytest.raises(UserError, match=r"unihand train needs lightning, which is not installed: "
                                        r"pip install 'unihand\[train\]'"):
        require("lightning", "train", "unihand train")
    assert main(["train", "vae", "--out", "x"]) == 2


def test_config_rules_go_by_the_config_class() -> None:
    """A value rule belongs to one class's field: ``window`` may not be negative in the vision settings,
    while the same name elsewhere follows its own class's rules (and types)."""
    from dataclasses import dataclass

    from unihand.config import model_config, typed
    from unihand.errors import UserError

    with pytest.raises(UserError, match=r"model\.vision\.window: expected a number >= 0, got -1"):
        model_config("small", {"vision": {"window": -1}})
    with pytest.raises(UserError, match=r"model\.vae\.dropout: expected a probability in \[0, 1\], got 1\.5"):
        model_config("small", {"vae": {"dropout": 1.5}})
    with pytest.raises(UserError, match=r"model\.vision\.pooling: expected one of perceptron, avg"):
        model_config("small", {"vision": {"pooling": "max"}})

    @dataclass
    class Other:  # fields named like the model's, without their rules
        window: int = 0
        dropout: float = 0.0
        frames: int = 1

    assert typed(Other, {"window": -3, "dropout": 2.0, "frames": 0}, "other") == Other(-3, 2.0, 0)
