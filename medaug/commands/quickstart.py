"""`medaug quickstart`: seed 000's Table 2 on BreastMNIST ({none, WRS} x {none, geometric} x 5
seeds, baseline CNN), run as `medaug sweep sweeps/quickstart.yaml` on the local executor."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medaug.commands.common import add_data_options, add_run_options, check_device
from medaug.errors import MedaugError

QUICKSTART_CONFIGS = (("none", False), ("none", True), ("sharpness-contrast-flip", False),
                      ("sharpness-contrast-flip", True))


def configure(q: argparse.ArgumentParser) -> None:
    q.description = ("Run the four seed-000 configurations x 5 seeds on BreastMNIST with the baseline "
                     "CNN and print mean +- std test ACC and AUC per configuration.")
    q.add_argument("--out", type=Path, default=Path("quickstart-results"))
    q.add_argument("--epochs", type=int, default=20)
    add_data_options(q)
    add_run_options(q)
    q.set_defaults(handler=quickstart_command)


def quickstart_table(rows: list[dict]) -> str:
    """Mean +- std test ACC/AUC (in %) per configuration, in seed 000's column order."""
    import numpy as np

    lines = [f"{'configuration':<26}{'seeds':>6}{'test ACC':>18}{'test AUC':>18}"]
    for aug, wrs in QUICKSTART_CONFIGS:
        sel = [r for r in rows if r["augmentation"] == aug and r["wrs"] == wrs]
        if not sel:
            continue
        acc = 100 * np.array([r["test_acc"] for r in sel])
        auc = 100 * np.array([r["test_auc"] for r in sel])
        name = {("none", False): "no geometric / WRS", ("none", True): "WRS only"}.get(
            (aug, wrs), "geometric only" if not wrs else "WRS + geometric")
        std = lambda a: a.std(ddof=1) if len(a) > 1 else 0.0  # noqa: E731
        lines.append(f"{name:<26}{len(sel):>6}{acc.mean():>11.2f} ± {std(acc):4.2f}{auc.mean():>11.2f} ± {std(auc):4.2f}")
    return "\n".join(lines)


QUICKSTART_STUDY = Path(__file__).resolve().parents[2] / "sweeps" / "quickstart.yaml"


def quickstart_command(args: argparse.Namespace) -> int:
    """`medaug sweep sweeps/quickstart.yaml` on the local executor, then seed 000's table."""
    from medaug.sweep import run_study
    from medaug.sweep.study import load_study

    check_device(args.device)  # before Ray starts twenty trials that would each fail on it
    if not QUICKSTART_STUDY.is_file():
        raise MedaugError(f"{QUICKSTART_STUDY}: quickstart study not found (install medaug from its source tree)")
    study = load_study(QUICKSTART_STUDY).with_fields(epochs=args.epochs)
    if args.download:  # fetch the npz once, before the trials look for it
        from medaug.data.medmnist import load_medmnist

        load_medmnist("breastmnist", root=args.data_root, download_missing=True)
    outcome = run_study(study, "local", out=args.out, data_root=args.data_root, device=args.device,
                        verify_md5=args.verify_md5, resume=True,
                        progress=not args.quiet, stream=sys.stderr)
    rows = [r for r in outcome.rows.to_dict("records") if r.get("status") == "finished"]
    print(quickstart_table(rows))
    print(f"{outcome.finished} finished, {outcome.failed} failed")
    print(f"results: {outcome.results_dir}")
    print(f"Ray experiment: {outcome.experiment_path}")
    return 0 if outcome.failed == 0 else 1
