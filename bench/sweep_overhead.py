"""What a sweep costs over a plain loop: the same N experiments three ways.

    .venv/bin/python bench/sweep_overhead.py                       # 4 x BreastMNIST, ~30 s each
    .venv/bin/python bench/sweep_overhead.py --n 6 --epochs 40 --slurm

(a) a plain Python loop calling `medaug.experiment.run` one after another;
(b) `run_study(..., executor="local")`: Ray Tune driving the same specs, one trial at a
    time (max_concurrent 1, the same --threads as the loop: the loop's conditions, so
    the ratio is the driver's overhead: Ray start-up, actor start, reporting);
(c) with --slurm: `run_study(..., executor="slurm", site=localhost)` on the local SLURM
    (hpc/localslurm), also one at a time, 1 CPU per job (a local node has 1 CPU); it
    also reports SLURM's per-trial latency, from submission to the first epoch line
    in progress.jsonl.

All variants use the same number of torch threads (default 1): on a shared 2-core
machine, more threads than free cores collapses throughput and would swamp the
quantity measured here. `--loop-again` repeats the loop after the sweeps to show drift.

Each variant writes to its own fresh folder (nothing is reused between them).
Target (issue 3): <= 5 % overhead for 30-second trials on the local executor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "medmnist"


def specs(n: int, epochs: int, dataset: str):
    from medaug.experiment import ExperimentSpec

    return [ExperimentSpec(dataset=dataset, epochs=epochs, seed=s) for s in range(n)]


def study_yaml(path: Path, n: int, epochs: int, dataset: str, cpus: int) -> Path:
    path.write_text(f"""
name: overhead
base: {{dataset: {dataset}, epochs: {epochs}}}
grid:
  seed: {list(range(n))}
resources: {{cpus: {cpus}, time: 60, mem: 2G}}
max_failures: 0
""")
    return path


def plain_loop(n: int, epochs: int, dataset: str, data_root: str, threads: int, out: Path) -> dict:
    import torch

    from medaug.experiment import run

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    walls = [run(spec, out, data_root=data_root)["wall_seconds"] for spec in specs(n, epochs, dataset)]
    return {"wall_s": time.perf_counter() - t0, "trial_wall_s": walls}


def sweep(executor: str, n: int, epochs: int, dataset: str, data_root: str, cpus: int, out: Path,
          site: str | None = None) -> dict:
    from medaug.sweep.driver import run_study

    study = study_yaml(out.parent / f"{executor}.yaml", n, epochs, dataset, cpus)
    t0 = time.perf_counter()
    outcome = run_study(study, executor, out, site=site, data_root=data_root, max_concurrent=1, progress=False)
    wall = time.perf_counter() - t0
    if outcome.finished != n:
        raise SystemExit(f"{executor}: only {outcome.finished}/{n} trials finished")
    result = {"wall_s": wall, "trial_wall_s": [float(x) for x in outcome.rows.wall_seconds]}
    latency = [m["slurm_first_epoch_s"] for m in outcome.last_results if "slurm_first_epoch_s" in m]
    first_epoch = [float(h[0]["seconds"]) for h in outcome.rows.history]
    if latency:
        result["submit_to_first_epoch_s"] = latency
        result["first_epoch_train_s"] = first_epoch
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4, help="experiments per variant")
    p.add_argument("--epochs", type=int, default=30, help="epochs per experiment (30: about 30 s on 2 CPU cores)")
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--data-root", default=str(DEFAULT_DATA))
    p.add_argument("--threads", type=int, default=1, help="torch threads per experiment, every variant")
    p.add_argument("--slurm", action="store_true", help="also run (c) on the local SLURM (SLURM_CONF exported)")
    p.add_argument("--loop-again", action="store_true", help="run the plain loop again at the end (drift check)")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here too")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="medaug-overhead-") as tmp:
        tmp = Path(tmp)
        print(f"{args.n} x {args.dataset} {args.epochs} epochs, {cores} cores", flush=True)
        results["loop"] = plain_loop(args.n, args.epochs, args.dataset, args.data_root, args.threads, tmp / "loop")
        print(f"(a) plain loop       {results['loop']['wall_s']:8.1f} s", flush=True)
        results["local"] = sweep("local", args.n, args.epochs, args.dataset, args.data_root, args.threads,
                                 tmp / "local")
        print(f"(b) sweep, local     {results['local']['wall_s']:8.1f} s", flush=True)
        if args.slurm:
            if not os.environ.get("SLURM_CONF"):
                print("(c) skipped: export SLURM_CONF (hpc/localslurm/localslurm.sh start)", file=sys.stderr)
            else:
                results["slurm"] = sweep("slurm", args.n, args.epochs, args.dataset, args.data_root, 1,
                                         tmp / "slurm", site="localhost")
                print(f"(c) sweep, slurm     {results['slurm']['wall_s']:8.1f} s", flush=True)
        if args.loop_again:
            results["loop-again"] = plain_loop(args.n, args.epochs, args.dataset, args.data_root, args.threads,
                                               tmp / "loop2")
            print(f"(a') plain loop again {results['loop-again']['wall_s']:8.1f} s", flush=True)
    loop = results["loop"]["wall_s"]
    print()
    print(f"{'variant':<16}{'wall s':>9}{'ratio':>8}{'mean trial s':>14}")
    for name, r in results.items():
        print(f"{name:<16}{r['wall_s']:9.1f}{r['wall_s'] / loop:8.3f}{statistics.mean(r['trial_wall_s']):14.1f}")
    local = results["local"]
    print(f"\nlocal executor overhead: {100 * (local['wall_s'] / loop - 1):+.1f} % of the plain loop "
          f"({(local['wall_s'] - loop) / args.n:+.1f} s per trial)")
    if "slurm" in results:
        lat = results["slurm"]["submit_to_first_epoch_s"]
        first = results["slurm"]["first_epoch_train_s"]
        print(f"SLURM submission -> first epoch reported: mean {statistics.mean(lat):.1f} s "
              f"(min {min(lat):.1f}, max {max(lat):.1f}); of which the first epoch's own training "
              f"{statistics.mean(first):.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, **vars(args), "json": None, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
