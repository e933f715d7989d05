"""Metrics against analytic cases and independent reference computations."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from unihand.eval import metrics as M

N, J = 12, 21


@pytest.fixture
def gt() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, J, 3)) * 0.04 + rng.normal(size=(N, 1, 3)) * 0.2


def _similarity(x: np.ndarray, seed: int) -> np.ndarray:
    R = Rotation.random(random_state=seed).as_matrix()
    return 1.7 * x @ R.T + np.array([0.3, -0.2, 0.5])


def _reference_similarity(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """HMR-style compute_similarity_transform (3 x P layout), written independently of unihand."""
    x, y = x.T, y.T
    mx, my = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    xc, yc = x - mx, y - my
    U, _, Vh = np.linalg.svd(xc @ yc.T)
    Z = np.eye(3)
    Z[-1, -1] *= np.sign(np.linalg.det(U @ Vh))
    R = Vh.T @ Z @ U.T
    s = np.trace(R @ (xc @ yc.T)) / np.sum(xc**2)
    return (s * R @ x + (my - s * R @ mx)).T


def _freihand_auc(errors_mm: np.ndarray) -> float:
    """EvalUtil.get_measures(0, 50, 100) of FreiHAND: per-joint PCK curve, trapz / norm, mean."""
    thresholds = np.linspace(0, 50, 100)
    norm = np.trapezoid(np.ones_like(thresholds), thresholds)
    aucs = []
    for j in range(errors_mm.shape[1]):
        pck = np.array([np.mean(errors_mm[:, j] <= t) for t in thresholds])
        aucs.append(np.trapezoid(pck, thresholds) / norm)
    return float(np.mean(aucs))


def test_similarity_of_gt_scores_zero(gt: np.ndarray) -> None:
    pred = _similarity(gt, 1)
    assert M.pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.g_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.ga_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.mpjpe(pred, gt) > 100.0


def test_constant_offset(gt: np.ndarray) -> None:
    pred = gt + np.array([0.003, 0.004, 0.0])  # 5 mm
    assert M.mpjpe(pred, gt) == pytest.approx(5.0, abs=1e-9)
    assert M.pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.ga_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)


def test_pa_mpjpe_matches_reference(gt: np.ndarray) -> None:
    pred = gt + np.random.default_rng(1).normal(size=gt.shape) * 0.01
    ref = np.mean([np.linalg.norm(_reference_similarity(p, g) - g, axis=-1).mean() for p, g in zip(pred, gt)]) * 1000
    assert M.pa_mpjpe(pred, gt) == pytest.approx(ref, rel=1e-10)


def test_auc_known_per_joint_error() -> None:
    errors = np.full((3, J), 10.0)  # every joint 10 mm off
    thr = np.linspace(0, 50, 100)
    # PCK is 0 below 10 mm and 1 from the first threshold >= 10: integrate the step by hand
    k = int(np.searchsorted(thr, 10.0))  # thr[k-1] < 10 <= thr[k]
    by_hand = ((thr[k] - thr[k - 1]) / 2 + (50.0 - thr[k])) / 50.0
    assert M.auc_per_frame(errors) == pytest.approx(np.full(3, by_hand))
    assert M.auc_per_frame(np.zeros((1, J)))[0] == pytest.approx(1.0)
    assert M.auc_per_frame(np.full((1, J), 1e-12))[0] == pytest.approx(1.0)  # alignment round-off still passes 0 mm
    assert M.auc_per_frame(np.full((1, J), 51.0))[0] == 0.0
    assert M.auc_per_frame(np.full((1, J), 50.0))[0] == pytest.approx((50 / 99) / 2 / 50)  # only the last half-step


def test_auc_matches_freihand_on_pooled_frames(gt: np.ndarray) -> None:
    pred = gt + np.random.default_rng(2).normal(size=gt.shape) * 0.015
    errors = M.pa_joint_errors(pred, gt)
    assert M.auc_j(pred, gt) == pytest.approx(_freihand_auc(errors), abs=1e-12)
    errors[:, :3] = [0.0, 50.0, 50.0 / 99 * 7]  # errors sitting exactly on thresholds count as correct
    assert M.auc_per_frame(errors).mean() == pytest.approx(_freihand_auc(errors), abs=1e-12)


def _reference_f(pred: np.ndarray, gt: np.ndarray, thr_mm: float) -> float:
    aligned = _reference_similarity(pred, gt)
    d = np.linalg.norm(aligned[:, None] - gt[None], axis=-1) * 1000
    p, r = np.mean(d.min(1) < thr_mm), np.mean(d.min(0) < thr_mm)
    return 2 * p * r / (p + r) if p + r else 0.0


def test_f_scores() -> None:
    rng = np.random.default_rng(3)
    verts = rng.normal(size=(3, 778, 3)) * 0.03
    same = M.f_scores_per_frame(verts, verts)
    np.testing.assert_array_equal(same["f5"], 1.0)
    np.testing.assert_array_equal(same["f15"], 1.0)
    pred = _similarity(verts[0], 4)[None] + rng.normal(size=(1, 778, 3)) * 0.004
    out = M.f_scores_per_frame(pred, verts[:1])
    assert out["f5"][0] == pytest.approx(_reference_f(pred[0], verts[0], 5.0))
    assert out["f15"][0] == pytest.approx(_reference_f(pred[0], verts[0], 15.0))
    assert 0.0 < out["f5"][0] < out["f15"][0] <= 1.0


def test_g_mpjpe_fits_first_two_frames_only(gt: np.ndarray) -> None:
    drifted = gt.copy()
    drifted[2:] += np.array([0.006, 0.008, 0.0])  # frames 2.. drift 10 mm
    pred = _similarity(drifted, 5)  # frames 0-1 fix the similarity exactly; undoing it leaves the drift
    assert M.g_mpjpe(pred, gt) == pytest.approx(10.0 * (N - 2) / N, rel=1e-9)
    assert M.ga_mpjpe(pred, gt) < M.g_mpjpe(pred, gt)


def test_acc_err() -> None:
    t = np.arange(10)[:, None, None] / 30.0
    traj = 0.5 * np.array([1.0, -2.0, 0.5]) * t**2 + np.random.default_rng(4).normal(size=(1, J, 3))
    assert M.acc_err(traj.copy(), traj, 30.0) == pytest.approx(0.0, abs=1e-9)
    bumped = traj.copy()
    bumped[4, 7, 1] += 0.002  # second differences at interior frames 3, 4, 5 change by d, -2d, d
    assert M.acc_err(bumped, traj, 30.0) == pytest.approx(4 * 0.002 / (8 * J) * 30.0**2)
    assert M.acc_err(traj[:2], traj[:2], 30.0) is None


def test_bucket_edges() -> None:
    masks = M.bucket_masks(np.array([0.0, 0.2499, 0.25, 0.5, 0.75, 0.99, 1.0]))
    assert masks["0-25"].tolist() == [True, True, False, False, False, False, False]
    assert masks["25-50"].tolist() == [False, False, True, False, False, False, False]
    assert masks["50-75"].tolist() == [False, False, False, True, False, False, False]
    assert masks["75-100"].tolist() == [False, False, False, False, True, True, True]
    with pytest.raises(ValueError):
        M.bucket_masks(np.array([1.2]))


def test_evaluate_motion_breakdowns(gt: np.ndarray) -> None:
    pred = gt.copy()
    pred[6:] += np.array([0.0, 0.0, 0.01])  # last half 10 mm off
    occ = np.array([0.1] * 6 + [0.9] * 6)
    missing = np.arange(N) >= 6
    res = M.evaluate_motion(pred, gt, 30.0, occlusion=occ, missing=missing)
    assert res["num_frames"] == N and res["mpjpe"] == pytest.approx(5.0)
    assert res["by_occlusion"]["0-25"] == pytest.approx({"num_frames": 6, "mpjpe": 0.0, "pa_mpjpe": 0.0, "auc_j": 1.0}, abs=1e-9)
    assert res["by_occlusion"]["75-100"]["mpjpe"] == pytest.approx(10.0)
    assert res["by_occlusion"]["25-50"] == {"num_frames": 0, "mpjpe": None, "pa_mpjpe": None, "auc_j": None}
    assert res["missing_rate"] == 0.5
    assert res["by_missing"]["missing"]["mpjpe"] == pytest.approx(10.0)
    assert "f5" not in res
    verts = np.random.default_rng(5).normal(size=(N, 778, 3)) * 0.03
    with_mesh = M.evaluate_motion(pred, gt, 30.0, pred_vertices=verts, gt_vertices=verts)
    assert with_mesh["f5"] == with_mesh["f15"] == 1.0


def test_evaluate_motion_rejects_bad_input(gt: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shape"):
        M.evaluate_motion(gt[:5], gt, 30.0)
    bad = gt.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.evaluate_motion(bad, gt, 30.0)
    with pytest.raises(ValueError, match="occlusion"):
        M.evaluate_motion(gt, gt, 30.0, occlusion=np.zeros(3))
    with pytest.raises(ValueError, match="both"):
        M.evaluate_motion(gt, gt, 30.0, gt_vertices=np.zeros((N, 778, 3)))


def test_aggregate_weights(gt: np.ndarray) -> None:
    rng = np.random.default_rng(6)
    a = M.evaluate_motion(gt + [0.002, 0, 0], gt, 30.0, occlusion=np.full(N, 0.1), missing=np.zeros(N, bool))
    short = gt[:4]
    noisy = short + rng.normal(size=short.shape) * 0.01
    b = M.evaluate_motion(noisy, short, 30.0, occlusion=np.full(4, 0.6), missing=np.array([1, 1, 1, 0], bool))
    agg = M.aggregate([a, b])
    assert agg["num_sequences"] == 2 and agg["num_frames"] == N + 4
    assert agg["mpjpe"] == pytest.approx((N * 2.0 + 4 * b["mpjpe"]) / (N + 4))
    pooled = np.concatenate([M.pa_joint_errors(gt + [0.002, 0, 0], gt), M.pa_joint_errors(noisy, short)])
    pooled[pooled < 1e-9] = 0.0  # sequence a is perfect after alignment (round-off allowance)
    assert agg["auc_j"] == pytest.approx(_freihand_auc(pooled), abs=1e-12)
    assert agg["g_mpjpe"] == pytest.approx((a["g_mpjpe"] + b["g_mpjpe"]) / 2)
    assert agg["by_occlusion"]["50-75"]["mpjpe"] == pytest.approx(b["mpjpe"])
    assert agg["by_occlusion"]["0-25"]["num_frames"] == N
    assert agg["by_missing"]["missing"]["num_frames"] == 3
    assert agg["by_missing_rate"]["0-25"]["num_sequences"] == 1
    assert agg["by_missing_rate"]["75-100"]["mpjpe"] == pytest.approx(b["mpjpe"])
    assert agg["by_missing_rate"]["25-50"] == {
        "num_sequences": 0, "num_frames": 0, "mpjpe": None, "pa_mpjpe": None, "auc_j": None,
        "g_mpjpe": None, "ga_mpjpe": None, "acc_err": None,
    }
    with pytest.raises(ValueError):
        M.aggregate([])
