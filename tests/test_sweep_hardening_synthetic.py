"""`--make-synthetic` on the local executor fills the machine and shows each fit's progress
(issue 10): fits run side by side, one thread per core, and the sweep log has one line per
finished epoch of each fit (epoch / total, seconds per epoch, ETA) while it runs."""

from __future__ import annotations

import os
import re

from medaug.cli import main
from medaug.sweep.synthetic_stage import local_layout
from sweep_helpers import ray_local, tiny_data, write  # noqa: F401  (fixtures)


def test_make_synthetic_runs_fits_side_by_side_and_logs_each_epoch(tmp_path, tiny_data, ray_local,  # noqa: F811
                                                                   capsys):
    study = write(tmp_path / "prog.yaml", f"""
name: fit-progress
base: {{dataset: breastmnist, epochs: 1, batch_size: 16, lr: 0.1}}
synthetic: {{root: {tmp_path / 'synthetic'}, strategy: inverse-scarcity, fraction: 0.1}}
generators:
  cvae: {{epochs: 3, width: 0.25}}
  class-mean-noise: {{epochs: 2}}
grid:
  generator: [cvae, class-mean-noise]
resources: {{cpus: 1}}
""")
    out = tmp_path / "out"
    code = main(["sweep", str(study), "--out", str(out), "--data-root", str(tiny_data), "--no-verify-md5",
                 "--make-synthetic"])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    log = printed.err
    # the machine is filled: cpus: 1 per trial does not make the two fits queue on one thread
    cores = os.cpu_count() or 1
    at_once, threads = local_layout(2, None, None)
    assert (at_once, threads) == (min(2, cores), max(1, cores // min(2, cores)))
    assert f"2 generator fit(s) on the local executor, {at_once} at once with {threads} thread(s) each" in log, log
    # one progress line per epoch of each fit, in order, with its pace and ETA
    for key, total in (("breastmnist_28/cvae", 3), ("breastmnist_28/class-mean-noise", 2)):
        lines = [ln for ln in log.splitlines() if f"fit {key}: epoch " in ln]
        epochs = [int(re.search(r"epoch (\d+)/(\d+)", ln).group(1)) for ln in lines]
        assert epochs == list(range(1, total + 1)), (key, lines)
        assert all(f"/{total}, " in ln and " s/epoch, ETA " in ln for ln in lines), lines
        assert lines[-1].endswith("ETA 0 s"), lines
        made = [ln for ln in log.splitlines() if f"with {key} " in ln]
        assert made and log.index(lines[-1]) < log.index(made[0])  # shown before the fit's summary
    # and the fit's own log has its per-epoch status lines
    fit_log = (out / "generators" / "breastmnist_28" / "cvae" / "fit.log").read_text()
    assert fit_log.count("\n") >= 3, fit_log
    assert "2 finished, 0 failed" in printed.out
