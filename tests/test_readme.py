"""The README's Python example runs as written: its shell command makes the 2D-only conditions file, its
Python block (in a fresh interpreter) prints the error it states, within a tolerance."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"
#: The printed figures may move this much (other library builds round differently) before the README is stale.
TOLERANCE_MM = {"MPJPE": 2.0, "PA-MPJPE": 0.5}


def python_section() -> tuple[str, str]:
    """The first ``bash`` and ``python`` blocks of the README's "## Python" section."""
    text = README.read_text()
    section = text[text.index("\n## Python\n"):]
    section = section[: section.index("\n## ", 1)]
    shell = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return shell, code


def figures(text: str) -> dict[str, float]:
    return {name: float(v) for name, v in re.findall(r"(PA-MPJPE|MPJPE) ([\d.]+) mm", text)}


def test_the_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    shell, code = python_section()
    for line in shell.strip().splitlines():
        argv = shlex.split(line.split("#")[0])
        assert argv[0] == "unihand", line
        done = subprocess.run([sys.executable, "-m", "unihand", *argv[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "data/test/seq_00000/conditions.npz") as f:  # 2D keypoints only: nothing of the truth's 3D reaches the model
        assert "kp2d" in f.files and not {"kp3d", "kp3d_hand", "mano"} & set(f.files)
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    stated = figures(code.split("# prints:")[1])
    got = figures(run.stdout)
    assert set(stated) == set(got) == set(TOLERANCE_MM), (stated, got)
    for name, tol in TOLERANCE_MM.items():
        assert abs(got[name] - stated[name]) <= tol, f"the README says {name} {stated[name]} mm, it printed {got[name]}"
    assert got["MPJPE"] > 1.0  # an honest error, not the ground truth read back
    assert (tmp_path / "motion.npz").is_file()
