"""The local executor: each trial runs `medaug.experiment.run` inside a Ray worker.

Ray places trials by the CPUs/GPUs they ask for (fractional GPUs pack several small
trials on one device); the training loop's per-epoch callback is `tune.report`, so a
scheduler such as ASHA sees every epoch (the last one with the final report, after the
test evaluation wrote the row: `trial.epoch_reports`). A retried trial (max_failures)
resumes from the run's state.pt; a trial whose finished row already exists is not
trained again: its history is replayed to Tune.
"""

from __future__ import annotations

from typing import Any

from medaug.sweep.trial import (RunOptions, epoch_pause, epoch_reports, final_report, finished_row, has_row,
                                replay_reports, set_threads)


def trial_spec(config: dict[str, Any]):
    """A trial's spec from its Tune config: the grid cell plus what Tune sampled."""
    from medaug.experiment import ExperimentSpec

    data = dict(config["cell"]["spec"])
    data.update({k: v for k, v in config.items() if k != "cell"})  # searched fields
    if "milestones" in data:
        data["milestones"] = tuple(data["milestones"])
    return ExperimentSpec.from_dict(data, where="trial config")


def local_trainable(config: dict[str, Any], options: dict[str, Any]) -> None:
    """Ray Tune function trainable: one experiment, one report per epoch, then a final report."""
    from ray import tune

    from medaug.experiment import run

    opts = RunOptions(**options)
    set_threads(opts.threads)
    spec = trial_spec(config)
    done = finished_row(opts, spec)
    if done is not None:
        for report in replay_reports(done):
            if report.get("final"):
                report["ray_node_id"] = ray_node_id()
            tune.report(report)
        return
    context = {"executor": "local", "study": opts.study, "trial_id": tune.get_context().get_trial_id()}
    row = run(spec, opts.out, data_root=opts.data_root, device=opts.device, quiet=True,
              overwrite=has_row(opts, spec),  # only a failed/stopped row can be there: replace it
              verify_md5=opts.verify_md5, context=context,
              on_epoch=epoch_pause(epoch_reports(tune.report, spec.run_id, spec.epochs)))
    final = final_report(row)
    final["ray_node_id"] = ray_node_id()
    tune.report(final)


def ray_node_id() -> str | None:
    """The Ray node this trial ran on (a multi-node test checks trials used every node)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - informative only
        return None
