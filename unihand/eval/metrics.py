"""Hand motion metrics (docs/design.md §6). Inputs in metres, numpy float64 inside, results in mm
except AccEr (m/s^2) and the unitless AUC_J and F-scores.

Definitions (joints ``(N, J, 3)``, one sequence of N frames):

- MPJPE: mean Euclidean joint error.
- PA-MPJPE: MPJPE after a per-frame similarity Procrustes alignment (scale, rotation, translation).
- AUC_J: PCK of the Procrustes-aligned per-joint errors for thresholds ``np.linspace(0, 50, 100)`` mm
  (a joint counts as correct when its error ``<=`` the threshold, up to 1e-9 mm of round-off); per
  joint, the area ``np.trapezoid(pck, thresholds) / 50``; then the mean over joints (FreiHAND / dex-ycb-toolkit
  ``EvalUtil``). That area is linear in the frames, so it is also computed per frame
  (:func:`auc_per_frame`) and its frame mean is exactly the dataset AUC.
- F@5 / F@15: per frame, vertices (V, 3) Procrustes-aligned on the vertices; precision = fraction of
  predicted vertices whose nearest GT vertex is closer than d, recall = the reverse (strict ``<``,
  as the HO3D / FreiHAND evaluation scripts), F = 2PR / (P + R) (0 when P + R = 0); mean over frames.
- G-MPJPE / GA-MPJPE: one similarity transform (Umeyama with scale) fitted on the joints of the first
  two frames / of all frames, applied to the whole predicted sequence, then MPJPE.
- AccEr: second finite differences ``x[t-1] - 2 x[t] + x[t+1]`` of predicted and GT joints on the
  N - 2 interior frames, mean over those frames and joints of the norm of their difference, times
  ``fps**2`` (m/s^2), on the predictions as given (not aligned). Undefined (None) for N < 3.
- Camera paths (:func:`camera_errors`): per-frame rotation error (degrees) and position error (cm)
  of estimated T_cano_from_cam against the true ones.

Breakdowns. Occlusion buckets ``0-25``, ``25-50``, ``50-75``, ``75-100`` (%) are lower-inclusive:
``[0, .25)``, ``[.25, .5)``, ``[.5, .75)`` and ``[.75, 1]`` (1.0 falls in the last). Missing frames
(frames where the condition was dropped) split a sequence into ``observed`` and ``missing`` frames; the
sequence's missing-frame rate (fraction of missing frames) places it in the same four buckets in
:func:`aggregate`. Breakdowns hold the per-frame metrics (MPJPE, PA-MPJPE, AUC_J, F-scores), which
are well defined on any subset of frames, with ``num_frames``; an empty bucket reports None.

Aggregation over sequences (:func:`aggregate`): per-frame metrics are frame-weighted means (equal to
pooling all frames); G-MPJPE, GA-MPJPE and AccEr are properties of a whole sequence and are plain
means over sequences (sequences where AccEr is undefined are skipped). F-scores average over the
sequences that have meshes.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.spatial import cKDTree

from unihand.geometry.alignment import apply_similarity, procrustes_align, umeyama
from unihand.hand.joints import OPENPOSE_PARENTS

MM = 1000.0
#: PCK thresholds of AUC_J in mm.
AUC_THRESHOLDS_MM = np.linspace(0.0, 50.0, 100)
#: Round-off allowance of the PCK test (``error <= threshold + 1e-9 mm``), so that a perfect prediction,
#: whose aligned error is ~1e-14 mm rather than 0, still passes the 0 mm threshold and scores 1.
_AUC_TOLERANCE_MM = 1e-9
#: F-score distance thresholds in mm, with their result keys.
F_THRESHOLDS_MM = {"f5": 5.0, "f15": 15.0}
#: Bucket name -> [low, high) as fractions; the last bucket also includes 1.0.
BUCKETS = {"0-25": (0.0, 0.25), "25-50": (0.25, 0.5), "50-75": (0.5, 0.75), "75-100": (0.75, 1.0)}
#: Metrics with one value per frame (breakdowns, frame-weighted aggregation); the F-scores only with meshes.
VERTEX_METRICS = tuple(F_THRESHOLDS_MM)
FRAME_METRICS = ("mpjpe", "pa_mpjpe", "auc_j", *VERTEX_METRICS)
_CHILDREN = [j for j, p in enumerate(OPENPOSE_PARENTS) if p >= 0]
_PARENTS = [OPENPOSE_PARENTS[j] for j in _CHILDREN]
#: Metrics of a whole sequence (means over sequences).
SEQUENCE_METRICS = ("g_mpjpe", "ga_mpjpe", "acc_err")


def _points(name: str, x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Finite float64 (..., P, 3) points, optionally of the same shape as ``ref``; ValueError otherwise."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be (..., P, 3), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if ref is not None and arr.shape != ref.shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {ref.shape} to match the ground truth")
    return arr


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-joint Euclidean errors (..., J) in mm."""
    gt = _points("gt", gt)
    return np.linalg.norm(_points("pred", pred, gt) - gt, axis=-1) * MM


def pa_joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-joint errors (..., J) in mm after per-frame similarity Procrustes alignment."""
    gt = _points("gt", gt)
    aligned, _ = procrustes_align(_points("pred", pred, gt), gt)
    return np.linalg.norm(aligned - gt, axis=-1) * MM


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error in mm."""
    return float(joint_errors(pred, gt).mean())


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Procrustes-aligned (per frame, with scale) MPJPE in mm."""
    return float(pa_joint_errors(pred, gt).mean())


def _trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """Weights w with ``np.trapezoid(y, x) == w @ y`` for every y."""
    w = np.zeros_like(x)
    dx = np.diff(x) / 2.0
    w[:-1] += dx
    w[1:] += dx
    return w


def auc_per_frame(errors_mm: np.ndarray, thresholds_mm: np.ndarray = AUC_THRESHOLDS_MM) -> np.ndarray:
    """AUC of each frame's per-joint errors (..., J) -> (...): mean over joints of the normalised PCK area.

    The mean over frames equals the FreiHAND AUC of all frames' errors (see module doc).
    """
    thr = np.asarray(thresholds_mm, dtype=np.float64)
    w = _trapezoid_weights(thr) / (thr[-1] - thr[0])
    tail = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])  # tail[i] = sum(w[i:])
    errors = np.asarray(errors_mm, dtype=np.float64) - _AUC_TOLERANCE_MM
    first_ok = np.searchsorted(thr, errors, side="left")  # first i with thr[i] >= error
    return tail[first_ok].mean(axis=-1)


def auc_j(pred: np.ndarray, gt: np.ndarray) -> float:
    """AUC_J in [0, 1] of the Procrustes-aligned joint errors (thresholds 0-50 mm, 100 steps)."""
    return float(auc_per_frame(pa_joint_errors(pred, gt)).mean())


def f_scores_per_frame(pred_vertices: np.ndarray, gt_vertices: np.ndarray) -> dict[str, np.ndarray]:
    """F@5 and F@15 per frame, ``{"f5": (N,), "f15": (N,)}``, after per-frame Procrustes on the vertices."""
    gt = _points("gt_vertices", gt_vertices)
    if gt.ndim != 3:
        raise ValueError(f"gt_vertices must be (N, V, 3), got shape {gt.shape}")
    aligned, _ = procrustes_align(_points("pred_vertices", pred_vertices, gt), gt)
    out = {k: np.empty(gt.shape[0]) for k in F_THRESHOLDS_MM}
    for i, (p, g) in enumerate(zip(aligned, gt)):
        d_pred = cKDTree(g).query(p)[0] * MM  # each predicted vertex to its nearest GT vertex
        d_gt = cKDTree(p).query(g)[0] * MM
        for key, thr in F_THRESHOLDS_MM.items():
            precision, recall = np.mean(d_pred < thr), np.mean(d_gt < thr)
            out[key][i] = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return out


def global_aligned_errors(pred: np.ndarray, gt: np.ndarray, fit_frames: int | None) -> np.ndarray:
    """Per-joint errors (N, J) in mm after one similarity fitted on the first ``fit_frames`` frames (None: all)."""
    gt = _points("gt", gt)
    pred = _points("pred", pred, gt)
    if gt.ndim != 3:
        raise ValueError(f"joints must be (N, J, 3), got shape {gt.shape}")
    fit = slice(None) if fit_frames is None else slice(0, fit_frames)
    s, R, t = umeyama(pred[fit].reshape(-1, 3), gt[fit].reshape(-1, 3))
    return np.linalg.norm(apply_similarity(pred, s, R, t) - gt, axis=-1) * MM


def g_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE in mm after a similarity fitted on the first two frames' joints."""
    return float(global_aligned_errors(pred, gt, 2).mean())


def ga_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE in mm after a similarity fitted on all frames' joints."""
    return float(global_aligned_errors(pred, gt, None).mean())


def acc_err(pred: np.ndarray, gt: np.ndarray, fps: float) -> float | None:
    """Acceleration error in m/s^2 (module doc); None when there are fewer than 3 frames."""
    gt = _points("gt", gt)
    pred = _points("pred", pred, gt)
    if gt.shape[0] < 3:
        return None
    acc = lambda x: x[:-2] - 2.0 * x[1:-1] + x[2:]  # noqa: E731
    return float(np.linalg.norm(acc(pred) - acc(gt), axis=-1).mean() * fps**2)


def joint_acceleration(joints: np.ndarray, fps: float) -> np.ndarray:
    """Per interior frame and joint, the norm of the second finite difference times ``fps**2`` (N - 2, J), m/s^2."""
    x = np.asarray(joints, np.float64)
    return np.linalg.norm(x[:-2] - 2.0 * x[1:-1] + x[2:], axis=-1) * fps**2


def window_join_ratio(joints: np.ndarray, fps: float, window: int, overlap: int, radius: int = 2,
                      reference: np.ndarray | None = None) -> float:
    """Seams of windowed generation: the largest joint acceleration within ``radius`` frames of a window
    join (where one window's overlap starts and where it ends) over the 95th percentile elsewhere.

    Windows as :class:`unihand.pipeline.UniHandPipeline` lays them out (``window`` frames, each next one
    ``window - overlap`` later, the last one flush with the end); the per-frame acceleration is the
    largest over the joints. 1 or less: joins are no rougher than the rest. With ``reference`` (the true
    joints) the acceleration *error* is used instead, so a fast true movement that happens to fall on a
    join does not count as a seam.
    """
    n = len(joints)
    if n <= window:
        raise ValueError(f"a {n}-frame sequence fits one {window}-frame window: it has no joins")
    if reference is None:
        acc = joint_acceleration(joints, fps).max(-1)  # interior frames 1 .. n - 2
    else:
        x, y = np.asarray(joints, np.float64), np.asarray(reference, np.float64)
        diff = (x[:-2] - 2 * x[1:-1] + x[2:]) - (y[:-2] - 2 * y[1:-1] + y[2:])
        acc = np.linalg.norm(diff, axis=-1).max(-1) * fps**2
    starts = list(range(0, n - window, window - overlap)) + [n - window]
    joins = {f for a, b in zip(starts[:-1], starts[1:]) for j in (b, a + window)
             for f in range(j - radius, j + radius + 1)}
    at = np.isin(np.arange(1, n - 1), sorted(joins))
    return float(acc[at].max() / np.percentile(acc[~at], 95))


def rotation_errors_deg(T_a: np.ndarray, T_b: np.ndarray) -> np.ndarray:
    """Per frame, the angle (degrees) between the rotations of two pose sequences (N, 4, 4) or (N, 3, 3)."""
    R = np.einsum("nji,njk->nik", np.asarray(T_a)[:, :3, :3], np.asarray(T_b)[:, :3, :3])
    return np.degrees(np.arccos(np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))


def camera_errors(T_est: np.ndarray, T_true: np.ndarray) -> dict[str, float]:
    """An estimated camera path (N, 4, 4) T_cano_from_cam in metres against the true one: rotation error
    (degrees, mean and max over frames), position error (cm, as estimated: the metric scale included),
    and the true path's largest rotation and travel from the first frame, for scale."""
    T_est, T_true = np.asarray(T_est, np.float64), np.asarray(T_true, np.float64)
    rot = rotation_errors_deg(T_est, T_true)
    pos = 100 * np.linalg.norm(T_est[:, :3, 3] - T_true[:, :3, 3], axis=1)
    return {"rotation_mean_deg": float(rot.mean()), "rotation_max_deg": float(rot.max()),
            "position_mean_cm": float(pos.mean()), "position_max_cm": float(pos.max()),
            "true_rotation_max_deg": float(rotation_errors_deg(np.broadcast_to(np.eye(4), T_true.shape), T_true).max()),
            "true_travel_cm": float(100 * np.linalg.norm(T_true[:, :3, 3] - T_true[:1, :3, 3], axis=1).max())}


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(N, 21, 3) joints -> (N, 20) lengths of the skeleton's bones (OpenPose tree), metres."""
    x = np.asarray(joints, np.float64)
    return np.linalg.norm(x[..., _CHILDREN, :] - x[..., _PARENTS, :], axis=-1)


def bucket_masks(values: np.ndarray) -> dict[str, np.ndarray]:
    """Bool masks per bucket (``BUCKETS``) for fractions in [0, 1]; raises ValueError outside."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all((v >= 0.0) & (v <= 1.0)):
        raise ValueError("bucketed values must be fractions in [0, 1]")
    return {name: (v >= lo) & ((v < hi) | (hi == 1.0)) for name, (lo, hi) in BUCKETS.items()}


def _summary(frame: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, Any]:
    """Means of the per-frame metrics over the frames in ``mask`` (None when empty), with ``num_frames``."""
    n = int(mask.sum())
    return {"num_frames": n, **{k: float(v[mask].mean()) if n else None for k, v in frame.items()}}


def evaluate_motion(
    pred_joints: np.ndarray,
    gt_joints: np.ndarray,
    fps: float,
    pred_vertices: np.ndarray | None = None,
    gt_vertices: np.ndarray | None = None,
    occlusion: np.ndarray | None = None,
    missing: np.ndarray | None = None,
) -> dict[str, Any]:
    """All metrics of one sequence, JSON-ready.

    Joints (N, 21, 3) and optional vertices (N, 778, 3) in metres; ``occlusion`` (N,) fractions in
    [0, 1] adds ``by_occlusion``; ``missing`` (N,) bool (the frame's condition was dropped) adds
    ``missing_rate`` and ``by_missing`` (``observed`` / ``missing`` frames). F-scores need both
    vertex arrays. Keys: ``num_frames``, ``FRAME_METRICS`` present, ``SEQUENCE_METRICS``.
    """
    gt = _points("gt_joints", gt_joints)
    pred = _points("pred_joints", pred_joints, gt)
    if gt.ndim != 3 or gt.shape[0] == 0:
        raise ValueError(f"joints must be (N, J, 3) with N >= 1, got shape {gt.shape}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n = gt.shape[0]
    pa = pa_joint_errors(pred, gt)
    frame = {"mpjpe": joint_errors(pred, gt).mean(axis=-1), "pa_mpjpe": pa.mean(axis=-1), "auc_j": auc_per_frame(pa)}
    if (pred_vertices is None) != (gt_vertices is None):
        raise ValueError("F-scores need both pred_vertices and gt_vertices")
    if gt_vertices is not None:
        if np.shape(gt_vertices)[0] != n:
            raise ValueError(f"gt_vertices has {np.shape(gt_vertices)[0]} frames, expected {n}")
        frame.update(f_scores_per_frame(pred_vertices, gt_vertices))
    out: dict[str, Any] = _summary(frame, np.ones(n, dtype=bool))
    out.update(g_mpjpe=g_mpjpe(pred, gt), ga_mpjpe=ga_mpjpe(pred, gt), acc_err=acc_err(pred, gt, fps))
    if occlusion is not None:
        occ = np.asarray(occlusion, dtype=np.float64)
        if occ.shape != (n,):
            raise ValueError(f"occlusion has shape {occ.shape}, expected ({n},)")
        out["by_occlusion"] = {k: _summary(frame, m) for k, m in bucket_masks(occ).items()}
    if missing is not None:
        miss = np.asarray(missing)
        if miss.shape != (n,):
            raise ValueError(f"missing has shape {miss.shape}, expected ({n},)")
        miss = miss.astype(bool)
        out["missing_rate"] = float(miss.mean())
        out["by_missing"] = {"observed": _summary(frame, ~miss), "missing": _summary(frame, miss)}
    return out


def _weighted(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Frame-weighted means of the per-frame metrics of several summaries; None values are skipped.

    Joint metrics are always reported; F-scores when any item has them (over the items that do).
    """
    out: dict[str, Any] = {"num_frames": sum(it["num_frames"] for it in items)}
    for key in FRAME_METRICS:
        if key in VERTEX_METRICS and not any(key in it for it in items):
            continue
        pairs = [(it["num_frames"], it[key]) for it in items if it.get(key) is not None]
        weight = sum(w for w, _ in pairs)
        out[key] = sum(w * v for w, v in pairs) / weight if weight else None
    return out


def _sequence_means(results: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Plain means over sequences of the whole-sequence metrics (None values skipped)."""
    out: dict[str, float | None] = {}
    for key in SEQUENCE_METRICS:
        vals = [r[key] for r in results if r.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out


def aggregate(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine :func:`evaluate_motion` results of many sequences (module doc for the weighting).

    Adds ``num_sequences``; ``by_occlusion`` / ``by_missing`` are pooled over the sequences that have
    them; ``by_missing_rate`` groups sequences by their missing-frame rate (per-frame metrics
    frame-weighted, sequence metrics averaged, plus ``num_sequences``).
    """
    if not results:
        raise ValueError("nothing to aggregate: no sequence results")
    out = {"num_sequences": len(results), **_weighted(results), **_sequence_means(results)}
    for key, names in (("by_occlusion", BUCKETS), ("by_missing", ("observed", "missing"))):
        having = [r[key] for r in results if key in r]
        if having:
            out[key] = {name: _weighted([h[name] for h in having]) for name in names}
    rated = [r for r in results if "missing_rate" in r]
    if rated:
        masks = bucket_masks(np.array([r["missing_rate"] for r in rated]))
        out["by_missing_rate"] = {}
        for name, m in masks.items():
            group = [r for r, keep in zip(rated, m) if keep]
            summary = {"num_sequences": len(group), **_weighted(group), **_sequence_means(group)}
            out["by_missing_rate"][name] = summary
    return out
