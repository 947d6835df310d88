"""Estimated against actual time: the report's table of each trial's estimate and its `wall_seconds`.

`medaug sweep` writes OUT/estimate.json when it starts (medaug/sweep/estimate.py): per
trial the seconds of training, evaluation and state saves at this site's calibrated rates,
which is what a row's `wall_seconds` times, and the study's estimated wall time. This
module reads that file (plain JSON, untrusted: anything malformed is skipped) beside each
results folder and sets the estimates against the rows. A generator study's estimate
(medaug/sweep/generator_estimate.py) holds each trial's fit and evaluation seconds, set
against its generator-eval row's `fit_seconds` and `wall_seconds`. No torch here.
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
    for candidate, data in _estimate_files(folders):
        for item in _items(data, "trial"):
            secs = item.get("compute_s")
            if isinstance(item.get("run_id"), str) and _number(secs):
                per_trial[item["run_id"]] = float(secs)
        _study(candidate, data, studies)
    return per_trial, studies


def read_generator_estimates(folders: Any) -> tuple[dict[str, tuple[float, float]], float, list[dict[str, Any]]]:
    """A generator study's estimate (medaug/sweep/generator_estimate.py): (trial_id -> (fit
    seconds, evaluation seconds), the seconds of its reference classifiers, the study-level
    numbers), from the estimate.json in each folder or its parent."""
    per_trial: dict[str, tuple[float, float]] = {}
    refs = 0.0
    studies: list[dict[str, Any]] = []
    for candidate, data in _estimate_files(folders):
        for item in _items(data, "gen"):
            parts = item.get("parts") if isinstance(item.get("parts"), dict) else {}
            fit, ev = parts.get("fit_s"), parts.get("eval_s")
            if isinstance(item.get("run_id"), str) and _number(fit) and _number(ev):
                per_trial[item["run_id"]] = (float(fit), float(ev))
        refs += sum(float(i["compute_s"]) for i in _items(data, "ref") if _number(i.get("compute_s")))
        _study(candidate, data, studies)
    return per_trial, refs, studies


def _estimate_files(folders: Any) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for folder in folders:
        folder = Path(folder)
        folder = folder.parent if folder.is_file() else folder
        for candidate in (folder / ESTIMATE_FILE, folder.parent / ESTIMATE_FILE):
            data = _read(candidate)
            if data is not None:
                found.append((candidate, data))
                break
    return found


def _items(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The estimate's items of `kind` (trial: a classifier trial, also when the file predates kinds;
    gen: a generator study's trial; ref: its reference classifiers)."""
    items = data.get("items") if isinstance(data.get("items"), list) else []
    return [i for i in items if isinstance(i, dict) and i.get("kind", "trial") == kind]


def _study(candidate: Path, data: dict[str, Any], studies: list[dict[str, Any]]) -> None:
    if _number(data.get("wall_seconds")):
        studies.append({"file": str(candidate), "wall_seconds": float(data["wall_seconds"]),
                        "executor_start_s": float(data["executor_start_s"])
                        if _number(data.get("executor_start_s")) else 0.0,
                        "calibration": str(data.get("calibration", ""))})


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


def generator_timing_table(gen_eval: Any, sources: Any) -> Table | None:
    """A generator study's trials: estimated and actual seconds of each fit (`fit_seconds`) and
    of its evaluation (the row's `wall_seconds`); then all trials with the reference
    classifiers summed, and the study's estimated wall time against the span of its rows.
    None when no results folder holds a generator study's estimate or no row matches it."""
    import pandas as pd

    estimates, refs, studies = read_generator_estimates(sources)
    if not estimates or gen_eval is None or "trial_id" not in gen_eval:
        return None
    fin = gen_eval[gen_eval["trial_id"].isin(list(estimates))].copy()
    for col in ("fit_seconds", "wall_seconds", "fit_resumed_from"):
        fin[col] = pd.to_numeric(fin.get(col), errors="coerce")
    header = ["setting", "fit estimated (s)", "fit actual (s)", "eval estimated (s)", "eval actual (s)",
              "actual / estimated"]
    table = Table(key="generator_estimated_vs_actual", title="Estimated against actual time per generator trial",
                  row_header="trial_id", header=header)
    sums = [0.0, 0.0, 0.0, 0.0]
    for r in fin.sort_values("trial_id").itertuples():
        (fit_e, ev_e), fit_a, ev_a = estimates[r.trial_id], float(r.fit_seconds), float(r.wall_seconds)
        if not (math.isfinite(fit_a) and math.isfinite(ev_a)):
            continue
        resumed = int(r.fit_resumed_from) if _number(float(r.fit_resumed_from)) else 0
        setting = f"{r.generator} {r.dataset} {r.size} px" + (f" (fit resumed at epoch {resumed}: not summed)"
                                                              if resumed else "")
        if not resumed:
            sums = [a + b for a, b in zip(sums, (fit_e, fit_a, ev_e, ev_a))]
        table.rows.append((str(r.trial_id), [Cell(text=setting), *(Cell(text=f"{x:.1f}") for x in (
            fit_e, fit_a, ev_e, ev_a)), Cell(text=_ratio(fit_a + ev_a, fit_e + ev_e))]))
    if not table.rows:
        return None
    n = sum(1 for _, cells in table.rows if "not summed" not in (cells[0].text or ""))
    if refs:
        table.rows.append(("reference classifiers", [Cell(text="trained once per data set, in the first "
                                                     "evaluations"), Cell(text=""), Cell(text=""),
                                                     Cell(text=f"{refs:.1f}"), Cell(text="(in eval actual)"),
                                                     Cell(text="")]))
    fit_e, fit_a, ev_e, ev_a = sums
    ev_e += refs
    table.rows.append((f"all {n} trials" + (" and references" if refs else ""), [
        Cell(text=""), *(Cell(text=f"{x:.1f}") for x in (fit_e, fit_a, ev_e, ev_a)),
        Cell(text=_ratio(fit_a + ev_a, fit_e + ev_e))]))
    if studies and "created_at" in fin:
        ends = fin["created_at"]
        starts = ends - pd.to_timedelta(fin["fit_seconds"] + fin["wall_seconds"], unit="s")
        span = (ends.max() - starts.min()).total_seconds()
        wall = studies[0]["wall_seconds"] - studies[0]["executor_start_s"]
        table.rows.append(("study: first fit's start to last row", [
            Cell(text=""), Cell(text=""), Cell(text=""), Cell(text=f"{wall:.1f}"), Cell(text=f"{span:.1f}"),
            Cell(text=_ratio(span, wall))]))
    table.notes += [
        "Estimated: the images each fit trains on and each evaluation samples, classifies and trains its TSTR "
        "classifier on, over this site's measured rates (medaug bench calibrate; "
        f"{', '.join(sorted({s['calibration'] for s in studies})) or 'see estimate.json'}). Actual: the row's "
        "fit_seconds (the fit that finished it) and wall_seconds (its generator eval).",
        "The reference classifiers are estimated once per data set; the evaluations that trained them hold their "
        "actual time. A fit resumed from a checkpoint times its last part only: its row is shown, not summed.",
        "The study row sets the estimated wall time of the trials at the study's concurrency (without the "
        "executor's start-up) against the span from the first fit's start (row time minus its fit and eval "
        "seconds) to the last row.",
    ]
    return table
