"""Trajectory plot: a PNG written atomically with matplotlib's Agg backend."""

import numpy as np
import pytest

from unihand.errors import UserError
from unihand.data.windows import true_runs
from unihand.viz.trajectory import plot_trajectory


def test_png_written(tmp_path) -> None:
    import imageio.v3 as iio

    t = np.linspace(0, 2 * np.pi, 50)
    joints = np.zeros((50, 21, 3))
    joints[:, :, 0] = 0.1 * np.cos(t)[:, None]
    joints[:, :, 2] = 0.5 + 0.05 * np.sin(t)[:, None]
    joints += np.random.default_rng(0).normal(0, 0.02, size=(1, 21, 3))
    infilled = np.zeros(50, bool)
    infilled[10:15] = True
    path = plot_trajectory(tmp_path / "t.png", joints, fps=30, infilled=infilled, title="test")
    img = iio.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 800
    assert img.std() > 10  # not blank
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]


def test_single_frame_and_spans(tmp_path) -> None:
    plot_trajectory(tmp_path / "one.png", np.full((1, 21, 3), 0.4), fps=30)
    assert (tmp_path / "one.png").stat().st_size > 1000
    assert true_runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]


def test_bad_path_leaves_nothing(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="t.png: cannot check the output path"):
        plot_trajectory(tmp_path / "file" / "t.png", np.zeros((3, 21, 3)), fps=30)
