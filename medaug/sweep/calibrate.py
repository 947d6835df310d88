"""`medaug bench calibrate`: measure how fast this site's device trains, evaluates and fits.

The estimate of a study (medaug/sweep/estimate.py) divides the images each trial will
process by rates measured here, on random images of the right shape pushed through the
real code: `train_classifier` (augmentation, EMA, shifts, channels-last and AMP as a
trial does them) for the training rate; `evaluate_model` for the evaluation rate; the
per-epoch state save a trial writes; a generator's own `train_step` and `sample`. Each
measurement runs after a warm-up, for about `seconds` seconds.

What is measured: the targets a study needs (`--study`: each distinct classifier, size,
channels, batch, augmentation, EMA/shift setting of its cells, and each generator fit of
--make-synthetic with the study's settings), or those named (`--classifier`, `--size`,
`--recipe`, `--augmentation`, `--channels`, `--generator`). With `concurrent` N, N
processes measure the same target at the same moment (a barrier before each), so the
rates are those of one trial while N run at once, as a study running N at once sees them.
`executor_start` times starting the local executor as a sweep does (Ray, Tune and one
worker that imports what a trial imports) and stopping it.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medaug.errors import MedaugError
from medaug.sweep.estimate import (
    Calibration,
    classifier_eval_key,
    classifier_train_key,
    data_facts,
    device_label,
    generator_key,
)

MIN_STEPS = 10
MAX_STEPS = 2000


@dataclass(frozen=True)
class ClassifierTarget:
    classifier: str
    size: int
    channels: int
    batch_size: int = 64
    augmentation: str = "none"
    ema: float = 0.0
    translate: float = 0.0

    @property
    def key(self) -> str:
        return classifier_train_key(self.classifier, self.size, self.channels, self.batch_size, self.augmentation,
                                    bool(self.ema), bool(self.translate))

    @property
    def eval_key(self) -> str:
        return classifier_eval_key(self.classifier, self.size, self.channels)


@dataclass(frozen=True)
class GeneratorTarget:
    generator: str
    size: int
    channels: int
    config: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        return generator_key(self.generator, self.size, self.channels, self.full_config())

    def full_config(self) -> dict[str, Any]:
        from medaug.generators import GENERATORS

        return GENERATORS.get(self.generator).make_config(self.config).to_dict()


# ----------------------------------------------------------------------------- what to measure

def targets_from_study(study: Any, *, data_root: str | Path | None = None, verify_md5: bool = True
                       ) -> tuple[list[ClassifierTarget], list[GeneratorTarget]]:
    """The distinct classifier and generator targets of a study's cells (waiting ones included:
    --make-synthetic makes them run) and of the fits --make-synthetic would run; a generator
    study's are its fits' and its evaluations' (generator_estimate.calibration_targets)."""
    if getattr(study, "kind", "classifier") == "generator":
        from medaug.sweep.generator_estimate import calibration_targets

        return calibration_targets(study, data_root=data_root, verify_md5=verify_md5)
    classifiers: dict[str, ClassifierTarget] = {}
    generators: dict[str, GeneratorTarget] = {}
    for cell in study.cells:
        spec = study.spec_for(cell.spec)
        facts = data_facts(spec.dataset, spec.size, spec.data_options, data_root, verify_md5)
        t = ClassifierTarget(spec.classifier, spec.size, facts.channels, spec.batch_size, spec.augmentation,
                             spec.ema, spec.translate)
        classifiers.setdefault(t.key, t)
        req = cell.request
        if req is not None and cell.missing_synthetic() is not None:
            config = {"seed": 0, **dict(study.generators.get(req.generator, {}))}
            g = GeneratorTarget(req.generator, spec.size, facts.channels, config)
            generators.setdefault(g.key, g)
    return list(classifiers.values()), list(generators.values())


def targets_from_names(classifiers: list[str], sizes: list[int], recipes: list[str], augmentations: list[str],
                       channels: list[int], generators: list[str]) -> tuple[list[ClassifierTarget],
                                                                              list[GeneratorTarget]]:
    """Every named classifier x size x recipe (its batch, EMA, shifts) x augmentation x channels,
    and every named generator x size x channels at its default settings."""
    from medaug.train.recipes import get_recipe

    out_c: dict[str, ClassifierTarget] = {}
    for recipe in recipes:
        fields = get_recipe(recipe).fields if recipe else {}
        names = classifiers or [fields.get("classifier", "cnn")]
        for name in names:
            for size in sizes:
                for aug in augmentations:
                    for ch in channels:
                        t = ClassifierTarget(name, size, ch, int(fields.get("batch_size", 64)), aug,
                                             float(fields.get("ema", 0.0)), float(fields.get("translate", 0.0)))
                        out_c.setdefault(t.key, t)
    out_g = {g.key: g for g in (GeneratorTarget(name, size, ch, {}) for name in generators for size in sizes
                                for ch in channels)}
    return list(out_c.values()), list(out_g.values())


# ----------------------------------------------------------------------------- measurements (one process)

def _random_set(n: int, channels: int, size: int, split: str, seed: int) -> Any:
    import numpy as np

    from medaug.data.imageset import ImageSet

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    labels = (np.arange(n) % 2).astype(np.int64)
    return ImageSet(name="calibration", split=split, images=images, labels=labels, class_names=("a", "b"),
                    task="binary-class")


def _steps_for(seconds: float, per_step: float) -> int:
    return int(min(MAX_STEPS, max(MIN_STEPS, math.ceil(seconds / max(per_step, 1e-6)))))


def measure_classifier(t: ClassifierTarget, seconds: float, device: Any, sync=None) -> dict[str, Any]:
    """Training rate (train_classifier, one epoch after a warm-up epoch), evaluation rate and
    the per-epoch state save, of one classifier target."""
    import torch

    from medaug.classifiers import build_classifier
    from medaug.classifiers.transfer import ARCHS, build_transfer
    from medaug.store.atomic import atomic_write
    from medaug.train.loop import (
        TrainConfig,
        evaluate_model,
        make_optimizer,
        train_classifier,
    )

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        if t.classifier in ARCHS:
            return build_transfer(t.classifier, t.channels, 2, t.size, pretrained=False)
        return build_classifier(t.classifier, t.channels, 2, t.size)

    config = TrainConfig(augmentation=t.augmentation, batch_size=t.batch_size, epochs=1, ema=t.ema,
                         translate=t.translate, name="calibration")
    val = _random_set(2, t.channels, t.size, "val", 1)
    warm = train_classifier(model(), _random_set(4 * t.batch_size, t.channels, t.size, "train", 0), val, config,
                            device)
    steps = _steps_for(seconds / 2, t.batch_size / warm.train_images_per_s)
    _wait(sync)
    net = model()
    out = train_classifier(net, _random_set(steps * t.batch_size, t.channels, t.size, "train", 2), val, config,
                           device)
    train_rate = out.train_images_per_s
    # evaluation: a warm-up pass, then about seconds / 4
    small = _random_set(64, t.channels, t.size, "test", 3)
    t0 = time.perf_counter()
    evaluate_model(net, small, device)
    per_image = (time.perf_counter() - t0) / 64
    n_eval = int(min(20_000, max(256, seconds / 4 / max(per_image, 1e-7))))
    big = _random_set(n_eval, t.channels, t.size, "test", 4)
    _wait(sync)
    t0 = time.perf_counter()
    evaluate_model(net, big, device, channels_last=device.type == "cuda")
    eval_rate = n_eval / (time.perf_counter() - t0)
    # the state a trial saves after every epoch: model, optimizer, best weights (and EMA)
    optimizer = make_optimizer(net, config)
    payload = {"model": net.state_dict(), "optimizer": optimizer.state_dict(),
               "best_state": {k: v.detach().clone() for k, v in net.state_dict().items()}}
    if t.ema:
        payload["ema"] = payload["best_state"]
    saves = []
    with tempfile.TemporaryDirectory(prefix="medaug-calibrate-") as tmp:
        for _ in range(3):
            t0 = time.perf_counter()
            atomic_write(Path(tmp) / "state.pt", lambda p: torch.save(payload, p))
            saves.append(time.perf_counter() - t0)
    return {"train_images_per_s": train_rate, "eval_images_per_s": eval_rate, "checkpoint_s": statistics.median(saves),
            "train_images": steps * t.batch_size, "eval_images": n_eval}


def measure_generator(t: GeneratorTarget, seconds: float, device: Any, sync=None) -> dict[str, Any]:
    """Fit rate (the generator's own train_step on full batches) and sampling rate."""
    import numpy as np
    import torch

    from medaug.generators import build_generator
    from medaug.generators.base import to_float

    config = t.full_config()
    batch = int(config["batch_size"])
    gen = build_generator(t.generator, t.channels, t.size, 2, config, device=device)
    gen.train_mode(True)
    rng = np.random.default_rng(0)
    # one batch as the generator's own batching makes it (dcgan: one class per batch)
    pool = (np.arange(2 * batch) % 2).astype(np.int64)
    idx = gen.batch_indices(pool, batch, torch.Generator().manual_seed(0))[0]
    batch = len(idx)
    x_all = torch.from_numpy(rng.integers(0, 256, (batch, t.channels, t.size, t.size), dtype=np.uint8)).to(gen.device)
    y_all = torch.from_numpy(pool[idx]).to(gen.device)

    def steps(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            gen.train_step(to_float(x_all), y_all)
        if gen.device.type == "cuda":
            torch.cuda.synchronize(gen.device)
        return time.perf_counter() - t0

    per_step = steps(2) / 2
    n = _steps_for(seconds / 2, per_step)
    _wait(sync)
    fit_rate = n * batch / steps(n)
    out: dict[str, Any] = {"fit_images_per_s": fit_rate, "fit_images": n * batch, "config": config}
    if gen.can_sample:
        labels = np.arange(4) % 2
        t0 = time.perf_counter()
        gen.sample(labels, seed=0)
        per_image = (time.perf_counter() - t0) / 4
        k = int(min(2048, max(4, seconds / 2 / max(per_image, 1e-7))))
        _wait(sync)
        t0 = time.perf_counter()
        gen.sample(np.arange(k) % 2, seed=1)
        out.update(sample_images_per_s=k / (time.perf_counter() - t0), sample_images=k)
    return out


def _wait(sync: Any) -> None:
    if sync is not None:
        sync.wait()


def measure_all(classifiers: list[ClassifierTarget], generators: list[GeneratorTarget], seconds: float,
                device_name: str | None, threads: int, sync=None, say=None) -> dict[str, Any]:
    """Every target in order (the same order in every process); errors recorded per target."""
    from medaug.sweep.trial import set_threads
    from medaug.train.device import resolve_device

    set_threads(threads)
    device = resolve_device(device_name)
    results: dict[str, Any] = {"classifiers": {}, "generators": {}}
    for kind, targets, measure in (("classifiers", classifiers, measure_classifier),
                                   ("generators", generators, measure_generator)):
        for t in targets:
            _wait(sync)
            try:
                results[kind][t.key] = measure(t, seconds, device, sync)
            except MedaugError as exc:
                results[kind][t.key] = {"error": str(exc)}
                if sync is not None:
                    sync.abort()  # the others would wait for this process at the next barrier
                    raise
            if say is not None:
                say(f"measured {t.key}")
    return results


def _worker(classifiers: list, generators: list, seconds: float, device: str | None, threads: int, sync: Any,
            queue: Any) -> None:
    try:
        queue.put(("ok", measure_all(classifiers, generators, seconds, device, threads, sync)))
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


# ----------------------------------------------------------------------------- the executor's start-up

STARTUP_SCRIPT = """
import sys, time
t0 = time.perf_counter()
from medaug.sweep.driver import ray_init
from ray import tune
def trainable(config):
    import torch  # what a trial's worker imports before it trains
    import medaug.experiment, medaug.sweep.local  # noqa: F401
    tune.report({"epoch": 1})
ray_init(num_cpus=None)
import ray
tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), run_config=tune.RunConfig(
    storage_path=sys.argv[1], name="calibration", verbose=0)).fit()
ray.shutdown()
"""


def measure_executor_start(threads: int) -> float:
    """Seconds from launching a local sweep's driver to its first trial's worker ready, plus
    shutting down: a Python process that starts Ray and Tune, runs one trial that imports
    what a trial imports, and stops them."""
    from medaug.sweep.driver import RAY_ENV

    env = {**os.environ, **RAY_ENV, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="medaug-calibrate-") as tmp:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, tmp], env=env, capture_output=True, text=True,
                              timeout=600)
        seconds = time.perf_counter() - t0
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise MedaugError(f"measuring the local executor's start-up failed: {tail}")
    return seconds


# ----------------------------------------------------------------------------- all of it

def device_of(device: str | None) -> tuple[str, str]:
    """(kind, name) of the device trials would use: ("cpu", CPU model) or ("cuda", GPU name)."""
    from medaug.train.device import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        import torch

        return "cuda", torch.cuda.get_device_name(dev)
    return "cpu", _cpu_model()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def calibrate(classifiers: list[ClassifierTarget], generators: list[GeneratorTarget], *, site: str,
              device: str | None = None, threads: int = 1, concurrent: int = 1, seconds: float = 4.0,
              executor_start: bool = False, say=None) -> Calibration:
    """Measure every target (in `concurrent` processes at once) and return the calibration."""
    kind, name = device_of(device)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    if concurrent == 1:
        results = [measure_all(classifiers, generators, seconds, device, threads, say=say)]
    else:
        results = _measure_concurrently(classifiers, generators, seconds, device, threads, concurrent)
    cal = Calibration(site=site, device=device_label(kind, threads, name), threads=threads, concurrent=concurrent,
                      device_name=name, measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      conditions={"hostname": socket.gethostname(), "cpu_count": os.cpu_count(),
                                  "load_average_before": list(load_before) if load_before else None,
                                  "seconds_per_measurement": seconds})
    for t in classifiers:
        got = [r["classifiers"][t.key] for r in results]
        errors = [g["error"] for g in got if "error" in g]
        if errors:
            raise MedaugError(f"calibrating {t.key}: {errors[0]}")
        cal.classifiers[t.key] = {**asdict(t), "train_images_per_s": _mean(got, "train_images_per_s"),
                                  "checkpoint_s": _mean(got, "checkpoint_s"), "train_images": got[0]["train_images"]}
        cal.evaluation[t.eval_key] = {"classifier": t.classifier, "size": t.size, "channels": t.channels,
                                      "eval_images_per_s": _mean(got, "eval_images_per_s"),
                                      "eval_images": got[0]["eval_images"]}
    for g in generators:
        got = [r["generators"][g.key] for r in results]
        errors = [x["error"] for x in got if "error" in x]
        if errors:
            raise MedaugError(f"calibrating {g.key}: {errors[0]}")
        entry = {"generator": g.generator, "size": g.size, "channels": g.channels, "config": got[0]["config"],
                 "fit_images_per_s": _mean(got, "fit_images_per_s"), "fit_images": got[0]["fit_images"]}
        if "sample_images_per_s" in got[0]:
            entry["sample_images_per_s"] = _mean(got, "sample_images_per_s")
        cal.generators[g.key] = entry
    if executor_start:
        if say is not None:
            say("measuring the local executor's start-up (Ray, Tune, one worker)")
        cal.executor_start_s = measure_executor_start(threads)
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    cal.conditions["load_average_after"] = list(load_after) if load_after else None
    return cal


def _mean(got: list[dict[str, Any]], name: str) -> float:
    return float(statistics.fmean(g[name] for g in got))


def _measure_concurrently(classifiers: list, generators: list, seconds: float, device: str | None, threads: int,
                          concurrent: int) -> list[dict[str, Any]]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    sync = ctx.Barrier(concurrent, timeout=1800)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(classifiers, generators, seconds, device, threads, sync, queue),
                         daemon=True) for _ in range(concurrent)]
    for p in procs:
        p.start()
    results, errors = [], []
    try:
        for _ in procs:
            status, payload = queue.get(timeout=3600)
            (results if status == "ok" else errors).append(payload)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    if errors:
        first = next((e for e in errors if "BrokenBarrierError" not in e), errors[0])
        raise MedaugError(f"calibration failed: {first}")
    return results


def summary(cal: Calibration) -> str:
    """The rates as lines (what `medaug bench calibrate` prints)."""
    lines = [f"site {cal.site}, device {cal.device} ({cal.device_name}), {cal.threads} thread(s), "
             f"{cal.concurrent} process(es) at once"]
    for key, e in sorted(cal.classifiers.items()):
        ev = cal.evaluation.get(classifier_eval_key(e["classifier"], e["size"], e["channels"]), {})
        lines.append(f"  {key:<56} train {e['train_images_per_s']:9.1f} img/s   eval "
                     f"{ev.get('eval_images_per_s', float('nan')):9.1f} img/s   state save {e['checkpoint_s']:.3f} s")
    for key, e in sorted(cal.generators.items()):
        sample = f"   sample {e['sample_images_per_s']:9.1f} img/s" if "sample_images_per_s" in e else ""
        lines.append(f"  {key:<56} fit   {e['fit_images_per_s']:9.1f} img/s{sample}")
    if cal.executor_start_s is not None:
        lines.append(f"  local executor start-up and shutdown: {cal.executor_start_s:.1f} s")
    return "\n".join(lines)


__all__ = ["ClassifierTarget", "GeneratorTarget", "calibrate", "summary", "targets_from_names",
           "targets_from_study"]
