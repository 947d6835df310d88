"""What every executor shares about one trial: its options, its result row, its progress file.

A trial is one `ExperimentSpec` run with `medaug.experiment.run`; this module has no
Ray and no SLURM in it, so the local trainable, the SLURM job and the driver all read
and write the same things the same way:

- `OUT/results/<run_id>.parquet`: the row (`finished`, or `failed`/`stopped` written
  by the driver for trials that raised past max_failures or were stopped by ASHA).
- `OUT/runs/<run_id>/progress.jsonl`: one JSON object per finished epoch, appended by
  rank 0 of the training loop; `ProgressTail` reads it incrementally.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medaug.experiment import ExperimentSpec
from medaug.store.results import COLUMN_NAMES, result_path, write_row

EPOCH_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "lr", "seconds")
PAUSE_ENV = "MEDAUG_EPOCH_PAUSE_S"
FINAL_KEYS = ("best_epoch", "val_acc", "val_auc", "test_acc", "test_auc", "test_balanced_acc", "test_macro_f1",
              "wall_seconds", "train_images_per_s")


@dataclass(frozen=True)
class RunOptions:
    """How trials call `run`: the same for every trial of a sweep (paths absolute)."""

    out: str
    study: str
    data_root: str | None = None
    device: str | None = None
    verify_md5: bool = True
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_threads(n: int) -> None:
    """Threads for this process's math: processes x threads must not exceed the cores."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(max(1, min(n, 2)))
    except RuntimeError:  # already set once in this process (a reused Ray actor)
        pass


def epoch_pause(report: Callable[[dict[str, Any]], None] | None = None
                ) -> Callable[[dict[str, Any]], None] | None:
    """`report`, followed by a pause when MEDAUG_EPOCH_PAUSE_S=N is set.

    A test affordance (set through the environment or a site profile's `env`): N seconds
    after each saved epoch, so that a test can signal or kill a run mid-way or let ASHA
    stop a trial before it ends. Unset in real use, where this returns `report` itself.
    """
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    if pause <= 0:
        return report

    def report_then_pause(record: dict[str, Any]) -> None:
        if report is not None:
            report(record)
        time.sleep(pause)

    return report_then_pause


def run_dir(opts: RunOptions, spec: ExperimentSpec) -> Path:
    from medaug.experiment import run_dir as experiment_run_dir

    return experiment_run_dir(opts.out, spec)


def progress_path(opts: RunOptions, spec: ExperimentSpec) -> Path:
    return run_dir(opts, spec) / "progress.jsonl"


def read_row(path: Path) -> dict[str, Any] | None:
    """The row of one result file as plain Python values, or None when absent/unreadable."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError):
        return None
    return rows[0] if rows else None


def finished_row(opts: RunOptions, spec: ExperimentSpec) -> dict[str, Any] | None:
    path = result_path(opts.out, spec.run_id)
    if not path.is_file():
        return None
    row = read_row(path)
    return row if row is not None and row.get("status") == "finished" else None


def has_row(opts: RunOptions, spec: ExperimentSpec) -> bool:
    return result_path(opts.out, spec.run_id).is_file()


def is_last_epoch(record: dict[str, Any], epochs: int) -> bool:
    """The run's last epoch: never reported on its own (see `epoch_reports`)."""
    return int(record.get("epoch", 0) or 0) >= epochs


def epoch_reports(report: Callable[[dict[str, Any]], None], run_id: str, epochs: int
                  ) -> Callable[[dict[str, Any]], None]:
    """The per-epoch callback of a trial: every epoch but the last goes to `report`.

    The last epoch is carried by the final report, sent after the test evaluation has
    written the row. Reported on its own, it reaches ASHA's `max_t` (= epochs) and
    the scheduler stops the trial there, in the middle of the test evaluation: a trial
    that trained every epoch would end `stopped`, without its test numbers.
    """
    def on_epoch(record: dict[str, Any]) -> None:
        if not is_last_epoch(record, epochs):
            report(epoch_report(record, run_id))

    return on_epoch


def epoch_report(record: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What Tune sees per epoch: the loop's record (numbers only) and the run id."""
    out: dict[str, Any] = {k: record[k] for k in EPOCH_KEYS if k in record and record[k] is not None}
    out["run_id"] = run_id
    return out


def final_report(row: dict[str, Any]) -> dict[str, Any]:
    """The last report of a finished trial: its best-validation and test metrics."""
    out: dict[str, Any] = {k: row[k] for k in FINAL_KEYS if row.get(k) is not None}
    history = row.get("history") or []
    out["epoch"] = history[-1]["epoch"] if history else row.get("epochs", 0)
    out["run_id"] = row["run_id"]
    out["final"] = True
    return out


def replay_reports(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A finished row's history as epoch reports, then its final report (a resumed
    sweep re-reports a finished run this way instead of training it again). As in a
    live trial, the last epoch comes only with the final report (`epoch_reports`)."""
    final = final_report(row)
    for record in row.get("history") or []:
        if not is_last_epoch(record, final["epoch"]):
            yield epoch_report(record, row["run_id"])
    yield final


def update_row(opts: RunOptions, run_id: str, **changes: Any) -> None:
    """Rewrite one row with some columns changed (atomically; e.g. the final SLURM state)."""
    path = result_path(opts.out, run_id)
    row = read_row(path)
    if row is None:
        return
    row.update(changes)
    write_row({k: v for k, v in row.items() if k in COLUMN_NAMES}, opts.out)


def write_outcome_row(opts: RunOptions, spec: ExperimentSpec, status: str, *, error: str | None = None,
                      context: dict[str, Any] | None = None) -> Path:
    """A row for a trial that did not finish: `failed` (with its error) or `stopped`
    (ASHA), with the spec columns and whatever epochs it completed."""
    history = [{k: r.get(k) for k in EPOCH_KEYS} for r in read_progress(progress_path(opts, spec))]
    row: dict[str, Any] = {
        "run_id": spec.run_id,
        "status": status,
        "error": error,
        **spec.to_dict(),
        "spec_json": spec.canonical_json(),
        "history": history or None,
        "finished_at": datetime.now(timezone.utc),
        "study": opts.study,
    }
    if history:
        best = max(history, key=lambda r: (r.get("val_acc") if spec.select_metric == "acc" else r.get("val_auc"))
                   or float("-inf"))
        row.update(best_epoch=best["epoch"], val_acc=best.get("val_acc"), val_auc=best.get("val_auc"))
    row.update(context or {})
    return write_row({k: v for k, v in row.items() if k in COLUMN_NAMES}, opts.out)


def read_progress(path: Path) -> list[dict[str, Any]]:
    """All complete lines of a progress file, one record per epoch (last one wins)."""
    tail = ProgressTail(path)
    return list(tail.read_new())


class ProgressTail:
    """Incremental reader of a progress.jsonl that another process appends to.

    Only complete lines are consumed (a line being written is read next time), and
    an epoch is returned once, in increasing order: after a requeue the loop resumes
    at the next epoch, and a stale line never goes backwards.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.last_epoch = 0

    def read_new(self) -> Iterator[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in chunk[:end].splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            epoch = int(record.get("epoch", 0))
            if epoch > self.last_epoch:
                self.last_epoch = epoch
                yield record
