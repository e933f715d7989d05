"""The paper's Tables 1-4 in Markdown and JSON, with the paper's numbers beside ours.

Every evaluation run is one JSON record (see :func:`run_record`); the tables are built from
all records of an output folder, so running ``unihand evaluate`` on DexYCB and HOT3D with
several condition sets into the same folder fills Table 4 row by row.
Metric names used here: ``pa_mpjpe``, ``auc_j``, ``f5``, ``f15``, ``g_mpjpe``, ``ga_mpjpe``,
``acc_err`` (millimetres, AUC/F in [0, 1], AccEr in m/s^2).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unihand.files import atomic_write
from unihand.files import strict_json

#: Metric name -> (column header, decimals, higher is better).
METRICS: dict[str, tuple[str, int, bool]] = {
    "mpjpe": ("MPJPE ↓", 2, False),
    "pa_mpjpe": ("PA-MPJPE ↓", 2, False),
    "auc_j": ("AUC_J ↑", 3, True),
    "f5": ("F@5 ↑", 3, True),
    "f15": ("F@15 ↑", 3, True),
    "g_mpjpe": ("G-MPJPE ↓", 2, False),
    "ga_mpjpe": ("GA-MPJPE ↓", 2, False),
    "acc_err": ("AccEr ↓", 2, False),
}
#: DexYCB groups of Table 1 (result-record keys; buckets as ``unihand.eval.metrics.BUCKETS``) and headers.
DEXYCB_GROUPS: dict[str, str] = {
    "all": "All",
    "25-50": "Occlusion (25%–50%)",
    "50-75": "Occlusion (50%–75%)",
    "75-100": "Occlusion (75%–100%)",
}
_NA = None


@dataclass(frozen=True)
class Column:
    """One numeric column: ``group`` selects the metrics block of a run, ``metric`` the value."""

    group: str
    metric: str
    header: str


def _cols(groups: dict[str, str], metrics: tuple[str, ...]) -> list[Column]:
    return [Column(g, m, f"{title} {METRICS[m][0]}" if title else METRICS[m][0]) for g, title in groups.items() for m in metrics]


TABLE1_COLUMNS = _cols(DEXYCB_GROUPS, ("pa_mpjpe", "auc_j"))
TABLE2_COLUMNS = _cols({"all": ""}, ("pa_mpjpe", "auc_j", "f5", "f15"))
TABLE3_COLUMNS = _cols({"all": ""}, ("pa_mpjpe", "g_mpjpe", "ga_mpjpe", "acc_err"))
SYNTHETIC_COLUMNS = _cols({"all": "All"}, ("mpjpe", "pa_mpjpe", "auc_j", "g_mpjpe", "ga_mpjpe", "acc_err")) + _cols(
    {"0-25": "Occlusion (0%–25%)", **{k: v for k, v in DEXYCB_GROUPS.items() if k != "all"}}, ("pa_mpjpe",)
) + _cols({"static camera": "Static camera", "moving camera": "Moving camera"},
          ("pa_mpjpe", "g_mpjpe", "ga_mpjpe", "acc_err"))
TABLE4_COLUMNS = (
    _cols({"dexycb:all": "DexYCB-All"}, ("pa_mpjpe", "auc_j"))
    + _cols({"dexycb:75-100": "DexYCB-Occlusion"}, ("pa_mpjpe", "auc_j"))
    + _cols({"hot3d:all": "HOT3D"}, ("pa_mpjpe", "g_mpjpe", "ga_mpjpe"))
)

# Paper numbers, one tuple per row in column order; None where the paper prints "-".
PAPER_TABLE1: dict[str, tuple[float | None, ...]] = {
    "Spurr et al. (2020)": (6.83, 0.864, 7.22, 0.856, 8.00, 0.840, 10.65, 0.788),
    "MeshGraphormer": (6.41, 0.872, 6.85, 0.863, 7.22, 0.856, 7.76, 0.845),
    "SemiHandObj": (6.33, 0.874, 6.70, 0.866, 7.17, 0.857, 8.96, 0.821),
    "HandOccNet": (5.80, 0.884, 6.22, 0.876, 6.43, 0.872, 7.37, 0.853),
    "WiLoR": (5.01, 0.900, _NA, _NA, 5.42, 0.892, 5.68, 0.887),
    "S^2HAND(V)": (7.27, 0.855, 7.74, 0.845, 7.71, 0.846, 7.87, 0.843),
    "VIBE": (6.43, 0.871, 6.72, 0.865, 6.84, 0.864, 7.06, 0.858),
    "TCMR": (6.28, 0.875, 6.56, 0.869, 6.58, 0.868, 6.95, 0.861),
    "Deformer": (5.22, 0.896, 5.71, 0.886, 5.70, 0.886, 6.34, 0.873),
    "HaWoR": (4.76, 0.905, _NA, _NA, 5.03, 0.899, 5.07, 0.899),
    "UniHand (paper)": (4.08, 0.918, 4.22, 0.913, 4.25, 0.912, 4.26, 0.912),
}
PAPER_TABLE2: dict[str, tuple[float | None, ...]] = {
    "HandOccNet": (9.1, 0.819, 0.564, 0.963),
    "AMVUR": (8.3, 0.835, 0.608, 0.965),
    "HaMeR": (7.7, 0.846, 0.635, 0.980),
    "WiLoR": (7.5, 0.851, 0.646, 0.983),
    "Deformer": (9.4, _NA, 0.546, 0.963),
    "UniHand (paper)": (6.7, 0.866, 0.671, 0.988),
}
PAPER_TABLE3: dict[str, tuple[float | None, ...]] = {
    "HaMeR-SLAM": (9.20, 161.31, 43.85, 15.53),
    "WiLoR-SLAM": (7.17, 154.74, 40.69, 10.39),
    "HMP-SLAM": (10.68, 128.56, 38.25, 5.41),
    "Dyn-HaMR": (8.92, 59.04, 23.57, 5.16),
    "HaWoR": (5.47, 47.35, 18.14, 5.88),
    "UniHand (paper)": (4.76, 63.97, 25.24, 4.93),
}
PAPER_TABLE4: dict[str, tuple[float | None, ...]] = {
    "w/o. Condition Encoders": (5.21, 0.895, 5.56, 0.889, 5.92, 75.49, 31.03),
    "w/o. Pretrained E_vision": (6.52, 0.869, 6.71, 0.865, 8.73, 146.08, 39.53),
    "w/o. Hand Perceptron": (7.81, 0.843, 8.75, 0.824, 12.46, 180.59, 48.93),
    "w/o. 3D RoPE": (4.65, 0.906, 4.76, 0.904, 4.95, 69.20, 28.94),
    "w. c_vision": (4.24, 0.915, 4.27, 0.915, 4.52, 53.49, 23.28),
    "w. c_2D": (4.75, 0.905, 5.43, 0.891, 6.37, 98.17, 40.42),
    "w. c_3D": (3.99, 0.920, 4.17, 0.916, 4.15, 44.61, 20.73),
    "w. c_vision and c_3D": (3.48, 0.931, 3.67, 0.926, 3.82, 48.11, 21.36),
    "Ours (w. c_vision and c_2D)": (4.08, 0.918, 4.26, 0.912, 4.76, 63.97, 25.24),
}

TABLES: dict[str, tuple[str, str, list[Column], dict[str, tuple[float | None, ...]]]] = {
    "table1": ("dexycb", "Table 1: DexYCB test (S0), camera space, by occlusion level", TABLE1_COLUMNS, PAPER_TABLE1),
    "table2": ("ho3d", "Table 2: HO3D evaluation, camera space", TABLE2_COLUMNS, PAPER_TABLE2),
    "table3": ("hot3d", "Table 3: HOT3D test, world (canonical) space", TABLE3_COLUMNS, PAPER_TABLE3),
    "table4": ("", "Table 4: ablations (DexYCB camera space, HOT3D world space)", TABLE4_COLUMNS, PAPER_TABLE4),
    "synthetic": ("synthetic", "Synthetic test windows (canonical frame; no paper numbers)", SYNTHETIC_COLUMNS, {}),
}
#: Condition sets with a paper row in Table 4 (sorted condition names -> row label).
CONDITION_ROWS: dict[tuple[str, ...], str] = {
    ("vision",): "w. c_vision",
    ("2d",): "w. c_2D",
    ("3d",): "w. c_3D",
    ("3d", "vision"): "w. c_vision and c_3D",
    ("2d", "vision"): "Ours (w. c_vision and c_2D)",
}


def run_label(conditions: list[str], label: str | None = None) -> str:
    """Row label of a run: the user's label, else the paper's name for its condition set."""
    if label:
        return label
    key = tuple(sorted(conditions))
    return CONDITION_ROWS.get(key, "w. " + " and ".join(f"c_{c}" for c in key))


def run_record(
    dataset: str, conditions: list[str], metrics: dict[str, dict[str, float]], *,
    label: str | None = None, **info: Any,
) -> dict[str, Any]:
    """One evaluation run: ``metrics`` maps a group ("all", "25-50", ...) to metric values."""
    return {"dataset": dataset, "conditions": list(conditions), "label": run_label(conditions, label),
            "metrics": metrics, **info}


def _fmt(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{METRICS[metric][1]}f}"


def _value(run: dict[str, Any], col: Column, dataset: str) -> float | None:
    group = col.group
    if ":" in group:
        ds, group = group.split(":", 1)
        if run["dataset"] != ds:
            return None
    elif run["dataset"] != dataset:
        return None
    value = run["metrics"].get(group, {}).get(col.metric)
    return None if value is None else float(value)


def build_table(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON form of one table: paper rows, then one row per label of ours (merged over datasets)."""
    dataset, title, columns, paper = TABLES[name]
    rows: list[dict[str, Any]] = [
        {"method": method, "source": "paper", "values": {c.header: v for c, v in zip(columns, values)}}
        for method, values in paper.items()
    ]
    ours: dict[str, dict[str, float | None]] = {}
    notes: set[str] = set()
    for run in runs:
        vals = {c.header: _value(run, c, dataset) for c in columns}
        # A dataset's own table lists each of its runs (even without ground truth); Table 4 those it fills.
        if run["dataset"] != dataset and all(v is None for v in vals.values()):
            continue
        merged = ours.setdefault(f"{run['label']} (ours)", {c.header: None for c in columns})
        merged.update({k: v for k, v in vals.items() if v is not None})
        notes.update(run.get("notes", []))
    rows += [{"method": m, "source": "ours", "values": v} for m, v in ours.items()]
    return {"name": name, "title": title, "columns": [c.header for c in columns],
            "metrics": [c.metric for c in columns], "rows": rows, "notes": sorted(notes)}


def to_markdown(table: dict[str, Any]) -> str:
    """Markdown rendering of :func:`build_table`'s output."""
    header = "| Method | " + " | ".join(table["columns"]) + " |"
    sep = "|---|" + "---:|" * len(table["columns"])
    lines = [f"### {table['title']}", "", header, sep]
    for row in table["rows"]:
        cells = [_fmt(row["values"][c], m) for c, m in zip(table["columns"], table["metrics"])]
        method = f"**{row['method']}**" if row["source"] == "ours" else row["method"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [""] + [f"> {n}" for n in table["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def load_runs(folder: str | Path) -> list[dict[str, Any]]:
    """All run records under ``folder/runs`` (sorted by file name)."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder, "runs").glob("*.json"))]


def save_run(folder: str | Path, run: dict[str, Any]) -> Path:
    """Store a run record as ``runs/<dataset>__<label>.json`` (same dataset + label replaces)."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in run["label"]).strip("_").lower()
    path = Path(folder, "runs", f"{run['dataset']}__{slug}.json")
    text = strict_json(run, indent=2, sort_keys=True)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_tables(folder: str | Path) -> list[Path]:
    """(Re)write ``tables.md`` and ``tables.json`` in ``folder`` from every stored run; tables
    without a run of ours are left out."""
    runs = load_runs(folder)
    tables = [build_table(name, runs) for name in TABLES]
    tables = [t for t in tables if any(r["source"] == "ours" for r in t["rows"])]
    md = "\n".join(to_markdown(t) for t in tables)
    js = strict_json({t["name"]: t for t in tables}, indent=2)
    return [
        atomic_write(Path(folder, "tables.md"), lambda tmp: Path(tmp).write_text(md.rstrip() + "\n")),
        atomic_write(Path(folder, "tables.json"), lambda tmp: Path(tmp).write_text(js)),
    ]
