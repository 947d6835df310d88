"""What a sweep costs over a plain loop: the same N experiments, each way in a fresh process.

    .venv/bin/python bench/sweep_overhead.py                          # 6 x BreastMNIST, ~30 s each
    .venv/bin/python bench/sweep_overhead.py --n 12 --rounds 2 --slurm

(a) `loop`: a plain Python loop calling `medaug.experiment.run` one after another;
(b) `local`: `run_study(..., executor="local")`, Ray Tune driving the same specs one
    trial at a time (max_concurrent 1, the loop's thread count), so the difference is
    the driver's: Ray start-up, Tune, trial actors, per-epoch reports, shut-down;
(c) with --slurm: `run_study(..., executor="slurm", site=localhost)` on the local SLURM
    (hpc/localslurm), also one at a time, 1 CPU per job; it also reports SLURM's
    per-trial latency, from submission to the first epoch line in progress.jsonl.

Each arm runs as its own `python` process, timed from its start to its exit, so both
pay the interpreter and the torch/medmnist imports once (a loop in a warm process
would hide them and flatter the loop). `--rounds R` interleaves the arms (loop,
local, loop, local, ...): drift between ten-minute blocks on a shared machine can be
larger than the overhead measured; ratios come from the totals over all rounds.

The sweep's extra time splits into a fixed part (start-up before the first trial
trains, teardown after the last: Ray and Tune start and stop, the worker's imports)
and a per-trial part (the gaps between one trial's end and the next one's start);
both are printed, with the number of 30-second trials from which the fixed part
falls under 5 % of the total. Target (issue 3): <= 5 % overhead for 30-second trials
on the local executor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "medmnist"


def study_yaml(path: Path, n: int, epochs: int, dataset: str, cpus: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""
name: overhead
base: {{dataset: {dataset}, epochs: {epochs}}}
grid:
  seed: {list(range(n))}
resources: {{cpus: {cpus}, time: 60, mem: 2G}}
max_failures: 0
""")
    return path


def arm_main(args: argparse.Namespace) -> None:
    """One arm, in this (fresh) process; the parent times it and reads the rows."""
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.arm == "loop":
        from medaug.experiment import ExperimentSpec, run

        for seed in range(args.n):
            run(ExperimentSpec(dataset=args.dataset, epochs=args.epochs, seed=seed), out, data_root=args.data_root)
        return
    from medaug.sweep.driver import run_study

    cpus = args.threads if args.arm == "local" else 1
    study = study_yaml(out.parent / f"{args.arm}.yaml", args.n, args.epochs, args.dataset, cpus)
    outcome = run_study(study, args.arm, out, site="localhost" if args.arm == "slurm" else None,
                        data_root=args.data_root, max_concurrent=1, progress=False)
    if outcome.finished != args.n:
        raise SystemExit(f"{args.arm}: only {outcome.finished}/{args.n} trials finished")
    latency = [m["slurm_first_epoch_s"] for m in outcome.last_results if "slurm_first_epoch_s" in m]
    (out / "latency.json").write_text(json.dumps(latency))


def time_arm(arm: str, args: argparse.Namespace, out: Path) -> dict:
    import pandas as pd

    cmd = [sys.executable, __file__, "--arm", arm, "--out", str(out), "--n", str(args.n), "--epochs",
           str(args.epochs), "--dataset", args.dataset, "--data-root", args.data_root, "--threads", str(args.threads)]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True)
    t1 = time.time()
    if res.returncode != 0:
        raise SystemExit(f"{arm} failed:\n{res.stderr[-3000:]}")
    rows = pd.read_parquet(out / "results").sort_values("started_at")
    starts = [t.timestamp() for t in rows.started_at]
    ends = [t.timestamp() for t in rows.finished_at]
    result = {"wall_s": t1 - t0, "trial_wall_s": [float(x) for x in rows.wall_seconds],
              "startup_s": starts[0] - t0, "teardown_s": t1 - ends[-1],
              "gaps_s": [b - a for a, b in zip(ends, starts[1:])]}
    latency_file = out / "latency.json"
    if latency_file.exists() and (latency := json.loads(latency_file.read_text())):
        result["submit_to_first_epoch_s"] = latency
        result["first_epoch_train_s"] = [float(h[0]["seconds"]) for h in rows.history]
    return result


def report(rounds: list[dict[str, dict]], n: int) -> dict:
    names = [a for a in ("loop", "local", "slurm") if any(a in r for r in rounds)]
    tot = {a: {k: sum(r[a][k] for r in rounds if a in r) for k in ("wall_s", "startup_s", "teardown_s")}
           | {"trials": sum(len(r[a]["trial_wall_s"]) for r in rounds if a in r),
              "in_trials_s": sum(sum(r[a]["trial_wall_s"]) for r in rounds if a in r),
              "gaps_s": sum(sum(r[a]["gaps_s"]) for r in rounds if a in r),
              "runs": sum(1 for r in rounds if a in r)} for a in names}
    print(f"\n{'arm':<7}{'runs':>5}{'trials':>7}{'wall s':>9}{'in trials':>10}{'start-up':>10}{'teardown':>10}"
          f"{'gaps/trial':>11}")
    for a, t in tot.items():
        gaps = t["gaps_s"] / max(1, t["trials"] - t["runs"])
        print(f"{a:<7}{t['runs']:5d}{t['trials']:7d}{t['wall_s']:9.1f}{t['in_trials_s']:10.1f}"
              f"{t['startup_s'] / t['runs']:10.1f}{t['teardown_s'] / t['runs']:10.1f}{gaps:11.2f}")
    loop, local = tot["loop"], tot["local"]
    ratios = [r["local"]["wall_s"] / r["loop"]["wall_s"] for r in rounds]
    fixed = (local["startup_s"] + local["teardown_s"] - loop["startup_s"] - loop["teardown_s"]) / local["runs"]
    per_trial = (local["gaps_s"] - loop["gaps_s"]) / max(1, local["trials"] - local["runs"])
    per_trial += (local["in_trials_s"] - loop["in_trials_s"]) / local["trials"]
    trial_s = loop["in_trials_s"] / loop["trials"]
    wall = 100 * (local["wall_s"] / loop["wall_s"] - 1)
    print(f"\nlocal executor vs plain loop, {n} trials per run: wall {wall:+.1f} % "
          f"(per round: {', '.join(f'{100 * (x - 1):+.1f} %' for x in ratios)})")
    print(f"  fixed: {fixed:+.1f} s per study (Ray/Tune start and stop beyond the loop's own start-up); "
          f"per trial: {per_trial:+.2f} s = {100 * per_trial / trial_s:+.1f} % of a {trial_s:.0f}-s trial")
    if 0.05 * trial_s > per_trial:
        print(f"  overhead <= 5 % from {fixed / (0.05 * trial_s - per_trial):.0f} trials of {trial_s:.0f} s up")
    if "slurm" in tot:
        r = next(r["slurm"] for r in rounds if "slurm" in r)
        lat, first = r["submit_to_first_epoch_s"], r["first_epoch_train_s"]
        print(f"SLURM submission -> first epoch reported: mean {statistics.mean(lat):.1f} s "
              f"(min {min(lat):.1f}, max {max(lat):.1f}); of which the first epoch's own training "
              f"{statistics.mean(first):.1f} s")
    return {"totals": tot, "fixed_s": fixed, "per_trial_s": per_trial}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=6, help="experiments per run of an arm")
    p.add_argument("--epochs", type=int, default=30, help="epochs per experiment (30: about 30 s on one core)")
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--data-root", default=str(DEFAULT_DATA))
    p.add_argument("--threads", type=int, default=1, help="torch threads per experiment, every arm")
    p.add_argument("--rounds", type=int, default=2, help="interleaved loop/local rounds (default 2)")
    p.add_argument("--slurm", action="store_true", help="also run (c) once on the local SLURM (SLURM_CONF exported)")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here too")
    p.add_argument("--arm", choices=("loop", "local", "slurm"), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.arm:
        arm_main(args)
        return 0
    if args.slurm and not os.environ.get("SLURM_CONF"):
        raise SystemExit("--slurm: export SLURM_CONF first (hpc/localslurm/localslurm.sh start)")
    rounds: list[dict[str, dict]] = []
    print(f"{args.n} x {args.dataset} {args.epochs} epochs, {os.cpu_count()} cores, {args.rounds} round(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="medaug-overhead-") as tmp:
        for i in range(args.rounds):
            rounds.append({})
            for arm in ("loop", "local"):
                rounds[i][arm] = time_arm(arm, args, Path(tmp) / f"round{i}" / arm)
                print(f"round {i}: {arm:<6}{rounds[i][arm]['wall_s']:8.1f} s", flush=True)
        if args.slurm:
            rounds[-1]["slurm"] = time_arm("slurm", args, Path(tmp) / "slurm")
            print(f"slurm: {rounds[-1]['slurm']['wall_s']:8.1f} s", flush=True)
    summary = report(rounds, args.n)
    if args.json:
        given = {k: v for k, v in vars(args).items() if k not in ("json", "arm", "out")}
        args.json.write_text(json.dumps({"args": given, "cores": os.cpu_count(), "rounds": rounds, **summary},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
