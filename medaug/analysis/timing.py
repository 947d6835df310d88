"""Estimated against actual time: the report's table of each trial's estimate and its `wall_seconds`.

`medaug sweep` writes OUT/estimate.json when it starts (medaug/sweep/estimate.py): per
trial the seconds of training, evaluation and state saves at this site's calibrated rates,
which is what a row's `wall_seconds` times, and the study's estimated wall time. This
module reads that file (plain JSON, untrusted: anything malformed is skipped) beside each
results folder and sets the estimates against the rows. No torch here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from medaug.analysis.render import Cell, Table

ESTIMATE_FILE = "estimate.json"
ESTIMATE_FORMAT = 1


def read_estimates(folders: Any) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(run_id -> estimated seconds, the estimate files' study-level numbers) from the
    estimate.json in each folder or its parent (a folder named may be OUT/results)."""
    per_trial: dict[str, float] = {}
    studies: list[dict[str, Any]] = []
    for folder in folders:
        folder = Path(folder)
        folder = folder.parent if folder.is_file() else folder
        for candidate in (folder / ESTIMATE_FILE, folder.parent / ESTIMATE_FILE):
            data = _read(candidate)
            if data is None:
                continue
            for item in data.get("items") or []:
                secs = item.get("compute_s") if isinstance(item, dict) else None
                if isinstance(item, dict) and isinstance(item.get("run_id"), str) and _number(secs):
                    per_trial[item["run_id"]] = float(secs)
            if _number(data.get("wall_seconds")):
                studies.append({"file": str(candidate), "wall_seconds": float(data["wall_seconds"]),
                                "executor_start_s": float(data["executor_start_s"])
                                if _number(data.get("executor_start_s")) else 0.0,
                                "calibration": str(data.get("calibration", ""))})
            break
    return per_trial, studies


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == ESTIMATE_FORMAT else None


def timing_table(rows: Any, sources: Any) -> Table | None:
    """Per finished trial with an estimate: estimated and actual seconds and their ratio; then all
    trials summed, and the study's estimated wall time against the span of its rows. None when no
    results folder holds an estimate."""
    estimates, studies = read_estimates(sources)
    if not estimates:
        return None
    fin = rows[(rows["status"] == "finished") & rows["run_id"].isin(list(estimates))]
    header = ["setting", "seed", "estimated (s)", "actual (s)", "actual / estimated"]
    table = Table(key="estimated_vs_actual", title="Estimated against actual time per trial",
                  row_header="run_id", header=header)
    est_sum = act_sum = 0.0
    for r in fin.sort_values("run_id").itertuples():
        est, act = estimates[r.run_id], float(r.wall_seconds)
        if not math.isfinite(act):
            continue
        est_sum, act_sum = est_sum + est, act_sum + act
        setting = " ".join(str(x) for x in (getattr(r, "context", ""), getattr(r, "method", "")) if x)
        table.rows.append((str(r.run_id), [Cell(text=setting), Cell(text=str(r.seed)), Cell(text=f"{est:.1f}"),
                                           Cell(text=f"{act:.1f}"), Cell(text=_ratio(act, est))]))
    if table.rows:
        table.rows.append((f"all {len(table.rows)} trials", [Cell(text=""), Cell(text=""),
                                                             Cell(text=f"{est_sum:.1f}"), Cell(text=f"{act_sum:.1f}"),
                                                             Cell(text=_ratio(act_sum, est_sum))]))
    started, finished = rows.get("started_at"), rows.get("finished_at")
    if studies and started is not None and finished is not None and len(fin):
        span = (finished[fin.index].max() - started[fin.index].min()).total_seconds()
        study = studies[0]
        wall = study["wall_seconds"] - study["executor_start_s"]
        table.rows.append(("study: first start to last finish", [
            Cell(text=""), Cell(text=""), Cell(text=f"{wall:.1f}"), Cell(text=f"{span:.1f}"),
            Cell(text=_ratio(span, wall))]))
    table.notes += [
        "Estimated: the images each trial trains and evaluates over this site's measured rates (medaug bench "
        f"calibrate; {', '.join(sorted({s['calibration'] for s in studies})) or 'see estimate.json'}), plus its "
        "per-epoch state saves. Actual: the row's wall_seconds, which times the same part (training, evaluation, "
        "saves; not the data load).",
        "The study row sets the estimated wall time of the trials at the study's concurrency (without the "
        "executor's start-up) against the span from the first trial's start to the last one's end.",
    ]
    return table


def _ratio(actual: float, estimate: float) -> str:
    return f"{actual / estimate:.2f}" if estimate > 0 else "—"
