"""The bad-input corpus: every subcommand against every class of bad input.

Each case must exit with code 2 and one line naming the file or flag, the field and what was
expected (argparse's own errors keep their usage line), with no traceback and no output written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import unihand.cli as cli
from unihand.data.synthetic import TEST_SEED, SynthConfig, SyntheticWorld
from unihand.pipeline import shipped_checkpoint

N = 16


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Valid inputs (a conditions file, a motion file, a checkpoint copy, a short video) to break one field at a time."""
    root = tmp_path_factory.mktemp("corpus")
    seq = SyntheticWorld(TEST_SEED, SynthConfig(frames=N)).sequence(0)
    seq.conditions.save(root / "cond.npz")
    seq.motion.save(root / "motion.npz")
    shutil.copytree(shipped_checkpoint(), root / "ckpt")
    import imageio.v3 as iio

    iio.imwrite(root / "clip.mp4", np.zeros((4, 64, 64, 3), np.uint8), fps=10, codec="libx264")
    (root / "notes.npz").write_text("not a zip\n")
    return {"root": root, "cond": root / "cond.npz", "motion": root / "motion.npz", "ckpt": root / "ckpt",
            "video": root / "clip.mp4", "text_npz": root / "notes.npz"}


def _edit_npz(src: Path, dst: Path, **changes: object) -> Path:
    """``src`` with some fields replaced (``None`` deletes one)."""
    arrays = dict(np.load(src))
    for k, v in changes.items():
        if v is None:
            arrays.pop(k, None)
        else:
            arrays[k] = v
    np.savez(dst, **arrays)
    return dst


def _edit_ckpt(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    shutil.copytree(src, dst)
    meta = json.loads((dst / "config.json").read_text())
    edit(meta)
    (dst / "config.json").write_text(json.dumps(meta))
    return dst


def _nan_weights(src: Path, dst: Path) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    state = load_file(str(dst / "model.safetensors"))
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] * float("nan")
    save_file(state, str(dst / "model.safetensors"))
    return dst


def _nan_mano(dst: Path) -> str:
    import pickle

    from unihand.hand.testing import random_mano_arrays

    dst.mkdir()
    for side in ("RIGHT", "LEFT"):
        arrays = random_mano_arrays()
        arrays["v_template"][0, 0] = np.nan
        (dst / f"MANO_{side}.pkl").write_bytes(pickle.dumps(arrays, protocol=2))
    return str(dst)


def _cond(f: dict[str, Path], name: str, **changes: object) -> str:
    return str(_edit_npz(f["cond"], f["root"] / f"{name}.npz", **changes))


# (case id, argv from the files, expected words in the error line)
CASES: list[tuple[str, Callable[[dict[str, Path], Path], list[str]], str]] = [
    # --- generate: flags
    ("gen-steps-2000", lambda f, o: ["generate", str(f["cond"]), "-o", str(o / "m.npz"), "--steps", "2000"], "--steps"),
    ("gen-steps-0", lambda f, o: ["generate", str(f["cond"]), "-o", str(o / "m.npz"), "--steps", "0"], "--steps"),
    ("gen-steps-neg", lambda f, o: ["generate", str(f["cond"]), "-o", str(o / "m.npz"), "--steps", "-3"], "--steps"),
    ("gen-cfg-nan", lambda f, o: ["generate", str(f["cond"]), "-o", str(o / "m.npz"), "--cfg-scale", "nan"], "cfg"),
    ("gen-cfg-inf", lambda f, o: ["generate", str(f["cond"]), "-o", str(o / "m.npz"), "--cfg-scale", "inf"], "cfg"),
    ("gen-device-bogus", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--device", "bogus"], "--device"),
    ("gen-device-cuda", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--device", "cuda"], "--device"),
    ("gen-frames-0", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--frames", "0"], "--frames"),
    ("gen-frames-huge", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--frames", "100000000"], "--frames"),
    ("gen-seed-neg", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--seed", "-1"], "--seed"),
    # --- generate: output paths
    ("gen-out-dir", lambda f, o: ["generate", "-o", str(o)], "folder"),
    ("gen-out-under-file", lambda f, o: ["generate", "-o", str(f["cond"] / "m.npz")], "m.npz"),
    ("gen-out-fifo", lambda f, o: (os.mkfifo(o / "fifo.npz"), ["generate", "-o", str(o / "fifo.npz")])[1], "FIFO"),
    ("gen-out-symlink", lambda f, o: ((o / "link.npz").symlink_to(f["motion"]), ["generate", "-o", str(o / "link.npz")])[1],
     "symlink"),
    ("gen-out-device", lambda f, o: ["generate", "-o", "/dev/null"], "device"),
    # --- generate: conditions files
    ("cond-text-npz", lambda f, o: ["generate", str(f["text_npz"]), "-o", str(o / "m.npz")], "not an .npz"),
    ("cond-missing", lambda f, o: ["generate", str(o / "none.npz"), "-o", str(o / "m.npz")], "none.npz"),
    ("cond-K-zeros", lambda f, o: ["generate", _cond(f, "kz", K=np.zeros((3, 3), np.float32)), "-o", str(o / "m.npz")], "K"),
    ("cond-K-singular", lambda f, o: ["generate", _cond(f, "ks", K=np.diag([500.0, 500.0, 0.0]).astype(np.float32)),
                                       "-o", str(o / "m.npz")], "K"),
    ("cond-K-negative-focal", lambda f, o: ["generate", _cond(f, "kn", K=np.array(
        [[-500, 0, 112], [0, 500, 112], [0, 0, 1]], np.float32)), "-o", str(o / "m.npz")], "K"),
    ("cond-K-shape", lambda f, o: ["generate", _cond(f, "k2", K=np.eye(2, dtype=np.float32)), "-o", str(o / "m.npz")], "K"),
    ("cond-image-size-zero", lambda f, o: ["generate", _cond(f, "iz", image_size=np.array([0, 0])), "-o", str(o / "m.npz")],
     "image_size"),
    ("cond-image-size-negative", lambda f, o: ["generate", _cond(f, "ineg", image_size=np.array([-224, 224])),
                                                "-o", str(o / "m.npz")], "image_size"),
    ("cond-kp2d-pixels", lambda f, o: ["generate", _cond(f, "px", kp2d=np.full((N, 21, 2), 300.0, np.float32)),
                                        "-o", str(o / "m.npz")], "kp2d"),
    ("cond-kp2d-complex", lambda f, o: ["generate", _cond(f, "cx", kp2d=np.zeros((N, 21, 2), np.complex64)),
                                         "-o", str(o / "m.npz")], "kp2d"),
    ("cond-kp2d-bool", lambda f, o: ["generate", _cond(f, "bo", kp2d=np.zeros((N, 21, 2), bool)), "-o", str(o / "m.npz")],
     "kp2d"),
    ("cond-kp2d-shape", lambda f, o: ["generate", _cond(f, "sh", kp2d=np.zeros((N, 20, 2), np.float32)),
                                       "-o", str(o / "m.npz")], "kp2d"),
    ("cond-mask-strings", lambda f, o: ["generate", _cond(f, "ms", kp2d_mask=np.full((N, 21), "yes")),
                                         "-o", str(o / "m.npz")], "kp2d_mask"),
    ("cond-conf-range", lambda f, o: ["generate", _cond(f, "cf", kp2d_conf=np.full((N, 21), 3.0, np.float32)),
                                       "-o", str(o / "m.npz")], "kp2d_conf"),
    ("cond-is-right-list", lambda f, o: ["generate", _cond(f, "ir", is_right=np.array([True, False])),
                                          "-o", str(o / "m.npz")], "is_right"),
    ("cond-is-right-string", lambda f, o: ["generate", _cond(f, "irs", is_right=np.array("left")),
                                            "-o", str(o / "m.npz")], "is_right"),
    ("cond-fps-zero", lambda f, o: ["generate", _cond(f, "fz", fps=np.float32(0)), "-o", str(o / "m.npz")], "fps"),
    ("cond-frames-disagree", lambda f, o: ["generate", _cond(f, "fd", kp3d=np.zeros((N + 1, 21, 3), np.float32),
                                                              kp3d_mask=np.ones((N + 1, 21), bool)),
                                           "-o", str(o / "m.npz")], "frames"),
    ("first-frame-huge", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--first-frame", str(
        _edit_npz(f["motion"], o / "huge.npz", transl=np.full((N, 3), 1e30, np.float32)))], "transl"),
    # --- checkpoints
    ("ckpt-d-model-wide", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--checkpoint", str(_edit_ckpt(
        f["ckpt"], o / "c1", lambda m: m["model"]["vae"].update(d_model="wide")))], "vae.d_model"),
    ("ckpt-segment-0", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--checkpoint", str(_edit_ckpt(
        f["ckpt"], o / "c2", lambda m: m["model"]["vae"].update(segment=0)))], "vae.segment"),
    ("ckpt-unknown-key", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--checkpoint", str(_edit_ckpt(
        f["ckpt"], o / "c3", lambda m: m["model"]["diffusion"].update(depth=3)))], "diffusion.depth"),
    ("ckpt-nan-weights", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--checkpoint", str(_nan_weights(
        f["ckpt"], o / "c4"))], "NaN"),
    ("ckpt-missing", lambda f, o: ["generate", "-o", str(o / "m.npz"), "--checkpoint", str(o / "nope")], "checkpoint"),
    # --- synth
    ("synth-seed-neg", lambda f, o: ["synth", "--out", str(o / "s"), "--seed", "-1"], "--seed"),
    ("synth-num-0", lambda f, o: ["synth", "--out", str(o / "s"), "--num", "0"], "--num"),
    ("synth-frames-neg", lambda f, o: ["synth", "--out", str(o / "s"), "--frames", "-4"], "--frames"),
    ("synth-out-file", lambda f, o: ["synth", "--out", str(f["cond"])], "not a directory"),
    # --- train
    ("train-max-steps-abc", lambda f, o: ["train", "vae", "--out", str(o / "r"), "--set", "train.max_steps=abc"],
     "train.max_steps"),
    ("train-lr-fast", lambda f, o: ["train", "vae", "--out", str(o / "r"), "--set", "train.lr=fast"], "train.lr"),
    ("train-batch-0", lambda f, o: ["train", "vae", "--out", str(o / "r"), "--set", "train.batch_size=0"],
     "train.batch_size"),
    ("train-typo-key", lambda f, o: ["train", "vae", "--out", str(o / "r"), "--set", "train.max_step=3"],
     "train.max_step"),
    ("train-data-typo", lambda f, o: ["train", "vae", "--out", str(o / "r"), "--set", "data.seeds=3"], "data.seeds"),
    ("train-ckpt-every-0", lambda f, o: ["train", "vae", "--out", str(o / "r"), "--set", "train.ckpt_every=0"],
     "train.ckpt_every"),
    ("train-yaml-syntax", lambda f, o: ["train", "vae", "--out", str(o / "r"), "--set", "train={batch_size: [1"], "YAML"),
    ("train-binary-config", lambda f, o: ((o / "b.yaml").write_bytes(bytes(range(128, 256))),
                                          ["train", "vae", "--out", str(o / "r"), "--config", str(o / "b.yaml")])[1],
     "b.yaml"),
    ("train-section-scalar", lambda f, o: ["train", "vae", "--out", str(o / "r"), "--set", "train=5"], "train"),
    ("train-out-file", lambda f, o: ["train", "vae", "--out", str(f["cond"])], "--out"),
    # --- fk, metrics
    ("fk-nan", lambda f, o: ["fk", str(_edit_npz(f["motion"], o / "nan.npz", hand_pose=np.full((N, 45), np.nan,
                                                                                                  np.float32))),
                             "-o", str(o / "fk.npz")], "hand_pose"),
    ("fk-nan-mano-template", lambda f, o: ["fk", str(f["motion"]), "-o", str(o / "fk.npz"), "--mano-dir",
                                           _nan_mano(o / "mano")], "v_template"),
    ("fk-out-dir", lambda f, o: ["fk", str(f["motion"]), "-o", str(o)], "folder"),
    ("metrics-shape", lambda f, o: ["metrics", str(_edit_npz(f["motion"], o / "p.npz", joints=np.zeros((N, 20, 3)))),
                                    str(f["motion"])], "joints"),
    # --- estimate
    ("est-steps-2000", lambda f, o: ["estimate", str(f["video"]), "-o", str(o / "e"), "--steps", "2000"], "steps=2000"),
    ("est-cfg-nan", lambda f, o: ["estimate", str(f["video"]), "-o", str(o / "e"), "--cfg-scale", "nan"], "--cfg-scale"),
    ("est-device", lambda f, o: ["estimate", str(f["video"]), "-o", str(o / "e"), "--device", "bogus"], "--device"),
    ("est-fov", lambda f, o: ["estimate", str(f["video"]), "-o", str(o / "e"), "--fov", "190"], "--fov"),
    ("est-intrinsics", lambda f, o: ["estimate", str(f["video"]), "-o", str(o / "e"), "--intrinsics", "-5,5,3,3"],
     "--intrinsics"),
    ("est-threads", lambda f, o: ["estimate", str(f["video"]), "-o", str(o / "e"), "--threads", "-2"], "--threads"),
    ("demo-threads", lambda f, o: ["demo", "-o", str(o / "d"), "--threads", "-2"], "--threads"),
    ("demo-frames", lambda f, o: ["demo", "-o", str(o / "d"), "--frames", "3"], "--frames"),
    ("demo-out-file", lambda f, o: ["demo", "-o", str(f["cond"])], "folder"),
    ("est-depth-model-missing", lambda f, o: ["estimate", str(f["video"]), "-o", str(o / "e"), "--depth-model",
                                              str(o / "no_model")], "config.json"),
    ("est-depth-model-static", lambda f, o: ["estimate", str(f["video"]), "-o", str(o / "e"), "--camera", "static",
                                             "--depth-model", str(o)], "--depth-model"),
    ("est-missing-video", lambda f, o: ["estimate", str(o / "none.mp4"), "-o", str(o / "e")], "none.mp4"),
    ("est-not-video", lambda f, o: ["estimate", str(f["cond"]), "-o", str(o / "e")], "cond.npz"),
    ("est-out-file", lambda f, o: ["estimate", str(f["video"]), "-o", str(f["cond"])], "folder"),
    # --- evaluate
    ("eval-limit-0", lambda f, o: ["evaluate", "--dataset", "synthetic", "--out", str(o / "ev"), "--limit", "0"],
     "--limit"),
    ("eval-num-sequences-0", lambda f, o: ["evaluate", "--dataset", "synthetic", "--out", str(o / "ev"),
                                           "--num-sequences", "0"], "--num-sequences"),
    ("eval-steps-0", lambda f, o: ["evaluate", "--dataset", "synthetic", "--out", str(o / "ev"), "--steps", "0"],
     "--steps"),
    ("eval-conditions", lambda f, o: ["evaluate", "--dataset", "synthetic", "--out", str(o / "ev"),
                                      "--conditions", "2d,bogus"], "--conditions"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(case, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    name, argv_of, words = case
    out = tmp_path / "out"
    out.mkdir()
    argv = argv_of(files, out)
    before = {p: p.stat().st_mtime_ns for p in files["root"].rglob("*") if p.is_file()}
    made = set(out.rglob("*"))
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors: usage line + error line
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, f"{name}: exit {code}\n{err}"
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if not ln.startswith(("usage:", "  ", "                "))]
    assert len(lines) == 1, f"{name}: {err}"
    assert words.lower() in lines[0].lower(), f"{name}: {lines[0]!r} does not name {words!r}"
    assert set(out.rglob("*")) == made, f"{name}: wrote {set(out.rglob('*')) - made}"
    after = {p: p.stat().st_mtime_ns for p in files["root"].rglob("*") if p.is_file() and p in before}
    assert after == {p: t for p, t in before.items() if p in after}, f"{name}: changed an input"
