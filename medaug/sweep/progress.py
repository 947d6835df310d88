"""The sweep's progress display: one status line when something changes, one line per
trial that ends.

    [quickstart] 12 trials: 4 pending, 2 running, 5 done, 1 failed, 0 stopped | best val_acc 0.8462 (003)
    [quickstart] done    003 wrs=true augmentation=none seed=0: val_acc 0.8462 test_acc 0.8269 (slurm 41)

Built on Ray Tune's `Callback` (it runs in the driver); replaces Tune's own reporter.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from ray.tune import Callback


def trial_label(trial: Any) -> str:
    cell = (trial.config or {}).get("cell") or {}
    searched = {k: v for k, v in (trial.config or {}).items() if k != "cell"}
    extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in searched.items())
    index = cell.get("index")
    head = f"{index:03d}" if isinstance(index, int) else trial.trial_id
    return " ".join(x for x in (head, cell.get("label", ""), extra) if x)


class ProgressDisplay(Callback):
    """Counts trials by state and keeps the best value of the study's metric."""

    def __init__(self, study: str, total: int, metric: str, mode: str, stream: IO[str] | None = None,
                 min_interval_s: float = 5.0) -> None:
        self.study = study
        self.total = total
        self.metric = metric
        self.mode = mode
        self.stream = stream or sys.stderr
        self.min_interval_s = min_interval_s
        self.best: tuple[float, str] | None = None
        self.failed: set[str] = set()
        self.stopped: set[str] = set()
        self.done: set[str] = set()
        self._last_line = ""
        self._last_time = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config (callbacks included) into OUT/ray; the stream (a
        # terminal, a test's capture) need not travel, and may not pickle
        return {k: v for k, v in self.__dict__.items() if k != "stream"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stream = sys.stderr

    # -- Tune hooks -----------------------------------------------------------------
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)):
            better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
            if better:
                self.best = (float(value), trial_label(trial).split(" ")[0])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if last.get("final"):
            self.done.add(trial.trial_id)
            where = f" (slurm {last['slurm_job_id']})" if last.get("slurm_job_id") else ""
            self._say(f"done    {trial_label(trial)}: {self._metrics(last)}{where}")
        else:
            self.stopped.add(trial.trial_id)
            self._say(f"stopped {trial_label(trial)} at epoch {last.get('epoch', '?')}: {self._metrics(last)}")
        self._status(trials, force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.failed.add(trial.trial_id)
        self._say(f"failed  {trial_label(trial)} (after retries; its row records the error)")
        self._status(trials, force=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._status(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._status(trials, force=True)

    # -- output ---------------------------------------------------------------------
    def counts(self, trials: list) -> dict[str, int]:
        for t in trials:  # a trial that ended without a callback: classify it here
            if t.trial_id in self.done | self.failed | self.stopped:
                continue
            if t.status == "ERROR":
                self.failed.add(t.trial_id)
            elif t.status == "TERMINATED":
                (self.done if (t.last_result or {}).get("final") else self.stopped).add(t.trial_id)
        ended = self.done | self.failed | self.stopped
        running = sum(1 for t in trials if t.status == "RUNNING" and t.trial_id not in ended)
        pending = max(self.total - running - len(ended), 0)
        return {"pending": pending, "running": running, "done": len(self.done), "failed": len(self.failed),
                "stopped": len(self.stopped)}

    def _status(self, trials: list, force: bool = False) -> None:
        c = self.counts(trials)
        best = f" | best {self.metric} {self.best[0]:.4f} ({self.best[1]})" if self.best else ""
        line = (f"{self.total} trials: {c['pending']} pending, {c['running']} running, {c['done']} done, "
                f"{c['failed']} failed, {c['stopped']} stopped{best}")
        now = time.monotonic()
        if line != self._last_line and (force or now - self._last_time >= self.min_interval_s):
            self._say(line)
            self._last_line, self._last_time = line, now

    def _metrics(self, result: dict) -> str:
        keys = [self.metric] + [k for k in ("test_acc", "test_auc") if k != self.metric]
        return " ".join(f"{k} {result[k]:.4f}" for k in keys if isinstance(result.get(k), (int, float)))

    def _say(self, text: str) -> None:
        print(f"[{self.study}] {text}", file=self.stream, flush=True)
