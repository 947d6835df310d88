"""The cost estimate before a run (issue 13 item 4): `medaug bench calibrate` measures rates,
`medaug sweep --dry-run` turns images into seconds with them, `medaug report` sets the
estimate against each trial's wall_seconds."""

from __future__ import annotations

import json
import math

import pytest
from analysis_rows import make_row, write_rows
from conftest import make_medmnist_npz
from sweep_helpers import write

from medaug.analysis.report import build_report
from medaug.cli import main
from medaug.errors import MedaugError
from medaug.sweep.estimate import (
    Calibration,
    DataFacts,
    calibration_path,
    classifier_eval_key,
    classifier_train_key,
    estimate_study,
    load_calibration,
    pack,
    save_calibration,
    write_estimate,
)
from medaug.sweep.study import load_study

# BreastMNIST's split sizes (medmnist INFO; the estimate reads them without the file)
N_TRAIN, N_VAL, N_TEST = 546, 78, 156

STUDY = """
name: est
base: {dataset: breastmnist, classifier: cnn, epochs: 3, batch_size: 64}
grid:
  augmentation: [none, sharpness-contrast-flip]
  seed: [0, 1]
resources: {cpus: 1}
"""


def calibration(speed: float = 1.0, **extra) -> Calibration:
    """Rates for the study above, all multiplied by `speed` (fixed seconds divided by it)."""
    cal = Calibration(site="local", device="cpu-1t", threads=1, concurrent=2, executor_start_s=20.0 / speed)
    for aug, rate in (("none", 400.0), ("sharpness-contrast-flip", 250.0)):
        cal.classifiers[classifier_train_key("cnn", 28, 1, 64, aug, False, False)] = {
            "train_images_per_s": rate * speed, "checkpoint_s": 0.05 / speed}
    cal.evaluation[classifier_eval_key("cnn", 28, 1)] = {"eval_images_per_s": 1500.0 * speed}
    for k, v in extra.items():
        setattr(cal, k, v)
    return cal


def facts(dataset: str, size: int, options) -> DataFacts:
    assert dataset == "breastmnist"
    return DataFacts(N_TRAIN, N_VAL, N_TEST, 1)


def test_the_estimate_is_images_over_calibrated_rates(tmp_path):
    study = load_study(write(tmp_path / "s.yaml", STUDY))
    est = estimate_study(study, calibration(), concurrency=2, cpus_per_trial=1, gpus_per_trial=0, facts=facts)
    assert est.complete and len(est.items) == 4
    by_aug = {i.key.split("/")[4]: i for i in est.items}
    for aug, rate in (("none", 400.0), ("sharpness-contrast-flip", 250.0)):
        item = by_aug[aug]
        assert item.train_images == N_TRAIN * 3
        assert item.eval_images == 4 * N_VAL + N_TEST  # val after each of 3 epochs + the best's, and test
        assert item.compute_s == pytest.approx(N_TRAIN * 3 / rate + (4 * N_VAL + N_TEST) / 1500.0 + 3 * 0.05)
    per = sorted(i.seconds for i in est.items)
    assert est.trial_seconds == pytest.approx(sum(per))
    assert est.wall_seconds() == pytest.approx(20.0 + pack(per, 2))  # start-up + 2 slots, longest first
    cpu_h, gpu_h = est.device_hours()
    assert cpu_h == pytest.approx(sum(per) / 3600) and gpu_h == 0


def test_a_calibration_twice_as_fast_halves_the_estimate(tmp_path):
    study = load_study(write(tmp_path / "s.yaml", STUDY))
    slow = estimate_study(study, calibration(1.0), concurrency=2, cpus_per_trial=1, gpus_per_trial=0, facts=facts)
    fast = estimate_study(study, calibration(2.0), concurrency=2, cpus_per_trial=1, gpus_per_trial=0, facts=facts)
    assert fast.trial_seconds == pytest.approx(slow.trial_seconds / 2)
    assert fast.wall_seconds() == pytest.approx(slow.wall_seconds() / 2)
    for a, b in zip(slow.items, fast.items):
        assert b.seconds == pytest.approx(a.seconds / 2)


def test_min_steps_and_synthetic_images_count(tmp_path):
    """A recipe's min_steps adds epochs (TrainConfig.epochs_for); a request's set adds its images."""
    text = STUDY.replace("epochs: 3, batch_size: 64}", "epochs: 3, batch_size: 64, min_steps: 90}")
    text = text.replace("augmentation: [none, sharpness-contrast-flip]",
                        "augmentation: [none]\n  generator: [null, cvae]")
    text += "synthetic: {root: syn, fraction: 0.1}\n"
    study = load_study(write(tmp_path / "s.yaml", text))
    est = estimate_study(study, calibration(), concurrency=1, cpus_per_trial=1, gpus_per_trial=0, facts=facts,
                         cells=list(study.cells))
    real, syn = [i for i in est.items if i.cell in (0, 1)], [i for i in est.items if i.cell in (2, 3)]
    assert {i.train_images for i in real} == {N_TRAIN * 10}  # 9 steps per epoch: 10 epochs make 90 steps
    n = N_TRAIN + 54  # floor(0.1 x 546) synthetic images
    assert {i.train_images for i in syn} == {n * math.ceil(90 / math.ceil(n / 64))}


def test_a_missing_calibration_says_so_and_estimates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEDAUG_CALIBRATION_DIR", str(tmp_path / "none-here"))
    make_medmnist_npz(tmp_path / "data" / "breastmnist.npz")
    study = write(tmp_path / "s.yaml", STUDY)
    code = main(["sweep", str(study), "--dry-run", "--out", str(tmp_path / "out"), "--data-root",
                 str(tmp_path / "data"), "--no-verify-md5"])
    out = capsys.readouterr().out
    assert code == 0
    assert ("estimate: none (no calibration of site 'local' for a CPU trial with 1 thread(s) "
            f"({tmp_path / 'none-here' / 'local-cpu-1t.json'} does not exist))") in out
    assert "estimate from" not in out and "CPU-hours" not in out
    study_obj = load_study(study)
    est = estimate_study(study_obj, None, concurrency=2, cpus_per_trial=1, gpus_per_trial=0, missing="no file")
    assert est.items == [] and est.trial_seconds == 0 and not est.complete


def test_dry_run_prints_per_cell_and_total_from_the_site_s_calibration(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "cal"
    monkeypatch.setenv("MEDAUG_CALIBRATION_DIR", str(folder))
    save_calibration(calibration(), calibration_path("local", "cpu-1t"))
    make_medmnist_npz(tmp_path / "data" / "breastmnist.npz")
    study = write(tmp_path / "s.yaml", STUDY)
    code = main(["sweep", str(study), "--dry-run", "--out", str(tmp_path / "out"), "--data-root",
                 str(tmp_path / "data"), "--no-verify-md5", "--max-concurrent", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"estimate from {folder / 'local-cpu-1t.json'} (site local, device cpu-1t); 1 at once:" in out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith(("0  trial", "1  trial", "2  trial", "3  trial"))]
    assert len(lines) == 4 and all("1,638" in ln for ln in lines)  # 546 x 3 training images per trial
    total = next(ln for ln in out.splitlines() if ln.strip().startswith("total:"))
    expected = sum(N_TRAIN * 3 / r + (4 * N_VAL + N_TEST) / 1500 + 0.15 for r in (400, 400, 250, 250))
    assert f"{expected / 3600:.2f} CPU-hours" in total and "1 at once" in total
    assert "rates were measured with 2 process(es) at once; this study runs 1 at once" in out
    assert not (tmp_path / "out").exists()


def test_a_damaged_calibration_is_one_line(tmp_path):
    path = tmp_path / "local-cpu-1t.json"
    path.write_text(calibration().to_json().replace('"train_images_per_s": 400.0', '"train_images_per_s": -1'))
    with pytest.raises(MedaugError, match=r"train_images_per_s: expected a finite number > 0, got -1"):
        load_calibration(path)
    path.write_text("[1, 2]")
    with pytest.raises(MedaugError, match="not a medaug calibration"):
        load_calibration(path)


def test_calibrations_merge_by_key(tmp_path):
    path = tmp_path / "local-cpu-1t.json"
    first = calibration()
    save_calibration(first, path)
    newer = Calibration(site="local", device="cpu-1t", classifiers={"x/28px/1ch/b8/none": {
        "train_images_per_s": 9.0, "checkpoint_s": 0.0}})
    save_calibration(newer, path)
    back = load_calibration(path)
    assert set(back.classifiers) == set(first.classifiers) | {"x/28px/1ch/b8/none"}
    assert back.executor_start_s == 20.0 and back.evaluation == first.evaluation


def test_bench_calibrate_measures_and_the_estimate_uses_it(tmp_path, capsys, monkeypatch, one_thread):
    """A real measurement (a few seconds): rates > 0 for the named classifier and generator."""
    monkeypatch.setenv("MEDAUG_CALIBRATION_DIR", str(tmp_path / "cal"))
    code = main(["bench", "calibrate", "--classifier", "cnn", "--generator", "class-mean-noise", "--seconds", "0.2",
                 "--no-executor-start", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    cal = load_calibration(tmp_path / "cal" / "local-cpu-1t.json")
    assert f"calibration: {tmp_path / 'cal' / 'local-cpu-1t.json'}" in out
    entry = cal.classifiers[classifier_train_key("cnn", 28, 1, 64, "none", False, False)]
    assert entry["train_images_per_s"] > 0 and entry["checkpoint_s"] > 0
    assert cal.evaluation[classifier_eval_key("cnn", 28, 1)]["eval_images_per_s"] > 0
    (gen,) = cal.generators.values()
    assert gen["generator"] == "class-mean-noise" and gen["fit_images_per_s"] > 0 and gen["sample_images_per_s"] > 0
    study = load_study(write(tmp_path / "s.yaml", STUDY.replace("[none, sharpness-contrast-flip]", "[none]")))
    est = estimate_study(study, cal, concurrency=1, cpus_per_trial=1, gpus_per_trial=0, facts=facts)
    assert est.complete and est.trial_seconds > 0


def test_bench_calibrate_needs_something_to_measure(capsys):
    assert main(["bench", "calibrate"]) == 2
    assert "name what to measure" in capsys.readouterr().err


def test_report_shows_estimated_against_actual_time(tmp_path):
    study = load_study(write(tmp_path / "s.yaml", STUDY))
    out = tmp_path / "runs"
    rows = []
    est = estimate_study(study, calibration(), concurrency=2, cpus_per_trial=1, gpus_per_trial=0, facts=facts)
    for item, cell in zip(est.items, study.cells):
        row = make_row(augmentation=cell.spec["augmentation"], seed=cell.spec["seed"])
        row["run_id"] = item.run_id
        row["wall_seconds"] = 2 * item.compute_s  # each trial took twice its estimate
        rows.append(row)
    write_rows(out, rows)
    write_estimate(out, est)
    report = build_report([out], tmp_path / "report")
    table = report.tables["estimated_vs_actual"]
    assert [label for label, _ in table.rows][:4] == sorted(i.run_id for i in est.items)
    for label, cells in table.rows[:4]:
        assert cells[-1].text == "2.00"
    assert table.rows[4][0] == "all 4 trials" and table.rows[4][1][-1].text == "2.00"
    md = report.report_md.read_text()
    assert "Estimated against actual time per trial" in md
    first = next(i for i in est.items if i.run_id == table.rows[0][0])
    assert f"| {first.compute_s:.1f} | {2 * first.compute_s:.1f} | 2.00 |" in md
    assert "Estimated against actual time per trial" in report.index_html.read_text()
    # a folder without estimate.json: no such table
    (out / "estimate.json").unlink()
    assert "estimated_vs_actual" not in build_report([out], tmp_path / "report2").tables


def test_estimate_json_is_plain_and_damage_is_skipped(tmp_path):
    study = load_study(write(tmp_path / "s.yaml", STUDY))
    est = estimate_study(study, calibration(), concurrency=2, cpus_per_trial=1, gpus_per_trial=0, facts=facts)
    path = write_estimate(tmp_path, est)
    data = json.loads(path.read_text())
    assert data["complete"] and data["wall_seconds"] == pytest.approx(est.wall_seconds())
    from medaug.analysis.timing import read_estimates

    assert set(read_estimates([tmp_path / "results"])[0]) == {i.run_id for i in est.items}
    path.write_text("{not json")
    assert read_estimates([tmp_path]) == ({}, [])


# ----------------------------------------------------------------------------- generator studies

GEN_STUDY = """
kind: generator
name: gest
base: {dataset: breastmnist, epochs: 3, width: 0.25}
grid:
  generator: [cvae]
  seed: [0, 1]
eval: {n: 100, tstr: true, recipe_set: {epochs: 2, min_steps: 0, batch_size: 16}}
resources: {cpus: 1}
"""
# the evaluation's classifier: the fast recipe (fastnet, EMA, shifts) at batch 16
FAST_KEY = classifier_train_key("fastnet", 28, 1, 16, "none", True, True)


def gen_calibration(study, speed: float = 1.0, generator: bool = True) -> Calibration:
    from medaug.sweep.estimate import generator_key

    cal = Calibration(site="local", device="cpu-1t", threads=1, concurrent=2, executor_start_s=20.0 / speed)
    if generator:
        key = generator_key("cvae", 28, 1, study.trial(study.cells[0]).config)  # the seed is not part of it
        cal.generators[key] = {"fit_images_per_s": 500.0 * speed, "sample_images_per_s": 2000.0 * speed}
    cal.classifiers[FAST_KEY] = {"train_images_per_s": 300.0 * speed, "checkpoint_s": 0.5 / speed}
    cal.evaluation[classifier_eval_key("fastnet", 28, 1)] = {"eval_images_per_s": 1000.0 * speed}
    return cal


def _gen_estimate(study, cal):
    from medaug.sweep.generator_estimate import estimate_generator_study

    return estimate_generator_study(study, cal, concurrency=2, cpus_per_trial=1, gpus_per_trial=0, facts=facts)


def test_a_generator_study_s_estimate_is_its_fits_and_evaluations_over_calibrated_rates(tmp_path):
    study = load_study(write(tmp_path / "g.yaml", GEN_STUDY))
    est = _gen_estimate(study, gen_calibration(study))
    assert est.complete
    trials, (ref,) = [i for i in est.items if i.kind == "gen"], [i for i in est.items if i.kind == "ref"]
    assert len(trials) == 2 and {i.run_id for i in trials} == {study.trial(c).trial_id for c in study.cells}
    # fit: 546 x 3 epochs at 500 img/s, and 78 val_fd samples after each epoch at 2000 img/s
    fit_s = N_TRAIN * 3 / 500 + N_VAL * 3 / 2000
    # eval: n = 100 samples + 546 for TSTR at 2000 img/s; 3 x 100 + 546 images through the extractor and
    # 100 through the reference (both fastnet) at 1000 img/s; TSTR trains 2 epochs of 546 at 300 img/s,
    # a val pass after each epoch and the best's, then test, at 1000 img/s, no state saves
    classifier_s = N_TRAIN * 2 / 300 + (3 * N_VAL + N_TEST) / 1000
    eval_s = (100 + N_TRAIN) / 2000 + (3 * 100 + N_TRAIN) / 1000 + 100 / 1000 + classifier_s
    for item in trials:
        assert item.parts == pytest.approx({"fit_s": fit_s, "eval_s": eval_s})
        assert item.seconds == pytest.approx(fit_s + eval_s)
        assert item.train_images == N_TRAIN * 3 + N_TRAIN * 2
    # the reference classifier (extractor and reference are one spec): trained once for the study
    assert ref.seconds == pytest.approx(classifier_s)
    assert est.trial_seconds == pytest.approx(2 * (fit_s + eval_s) + classifier_s)
    assert est.wall_seconds() == pytest.approx(20.0 + pack([fit_s + eval_s] * 2 + [classifier_s], 2))
    faster = _gen_estimate(study, gen_calibration(study, speed=2.0))  # twice as fast: half the time
    assert faster.trial_seconds == pytest.approx(est.trial_seconds / 2)
    assert faster.wall_seconds() == pytest.approx(est.wall_seconds() / 2)


def test_tstr_n_shrinks_the_tstr_set_and_adds_a_trtr_classifier_on_as_many_real_images(tmp_path):
    study = load_study(write(tmp_path / "g.yaml", GEN_STUDY.replace("tstr: true,", "tstr: true, tstr_n: 200,")))
    est = _gen_estimate(study, gen_calibration(study))
    trials, (ref,) = [i for i in est.items if i.kind == "gen"], [i for i in est.items if i.kind == "ref"]
    # 200 TSTR samples instead of 546; TSTR trains 2 epochs of 200 images
    small_s = 200 * 2 / 300 + (3 * N_VAL + N_TEST) / 1000
    eval_s = (100 + 200) / 2000 + (3 * 100 + N_TRAIN) / 1000 + 100 / 1000 + small_s
    assert all(i.parts["eval_s"] == pytest.approx(eval_s) for i in trials)
    # the reference on all 546 real images, and TRTR on 200 of them, each trained once
    assert ref.seconds == pytest.approx(N_TRAIN * 2 / 300 + (3 * N_VAL + N_TEST) / 1000 + small_s)
    assert ref.train_images == N_TRAIN * 2 + 200 * 2


def test_a_generator_study_without_calibration_says_what_is_missing(tmp_path, capsys, monkeypatch):
    study_file = write(tmp_path / "g.yaml", GEN_STUDY)
    study = load_study(study_file)
    est = _gen_estimate(study, gen_calibration(study, generator=False))
    assert not est.complete and est.trial_seconds == pytest.approx(next(
        i.seconds for i in est.items if i.kind == "ref"))  # the classifiers are calibrated, the fits not
    missing = {i.missing for i in est.items if i.kind == "gen"}
    assert len(missing) == 1 and missing.pop().startswith("not calibrated: generator cvae/28px/1ch/b")
    # the dry run: no calibration file says so; the site's file gives per-cell lines and the total
    folder = tmp_path / "cal"
    monkeypatch.setenv("MEDAUG_CALIBRATION_DIR", str(folder))
    args = ["sweep", str(study_file), "--dry-run", "--out", str(tmp_path / "out"), "--max-concurrent", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "estimate: none (no calibration of site 'local' for a CPU trial with 1 thread(s)" in out
    save_calibration(gen_calibration(study), calibration_path("local", "cpu-1t"))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"estimate from {folder / 'local-cpu-1t.json'} (site local, device cpu-1t); 2 at once:" in out
    lines = [ln for ln in out.splitlines() if " gen " in ln]
    assert len(lines) == 2 and all("2,730" in ln for ln in lines)  # 546 x 3 fit + 546 x 2 TSTR images
    assert any(" ref " in ln and "trained once" in ln for ln in out.splitlines())
    total = next(ln for ln in out.splitlines() if ln.strip().startswith("total:"))
    assert f"{est.trial_seconds / 3600:.2f} CPU-hours" not in total  # (the partial estimate above is not it)
    assert f"{_gen_estimate(study, gen_calibration(study)).trial_seconds / 3600:.2f} CPU-hours" in total
    assert not (tmp_path / "out").exists()


def test_bench_calibrate_study_measures_a_generator_study_s_needs(tmp_path):
    from medaug.sweep.calibrate import targets_from_study

    study = load_study(write(tmp_path / "g.yaml", GEN_STUDY.replace("eval: {", "eval: {extractor: classifier, ")))
    classifiers, generators = targets_from_study(study)
    assert [g.generator for g in generators] == ["cvae"]  # one rate for both seeds
    assert {t.key for t in classifiers} == {FAST_KEY, classifier_train_key("cnn", 28, 1, 64, "none", False, False)}
    cal = gen_calibration(study)
    cal.classifiers[classifiers[1].key] = {"train_images_per_s": 100.0, "checkpoint_s": 0.1}
    cal.evaluation[classifier_eval_key("cnn", 28, 1)] = {"eval_images_per_s": 100.0}
    assert generators[0].key in cal.generators and _gen_estimate(study, cal).complete


def test_report_sets_a_generator_study_s_estimate_against_its_rows(tmp_path):
    from datetime import UTC, datetime, timedelta

    from medaug.store.generator_results import write_eval_row

    study = load_study(write(tmp_path / "g.yaml", GEN_STUDY))
    est = _gen_estimate(study, gen_calibration(study))
    out = tmp_path / "gen-out"
    end = datetime(2025, 1, 1, tzinfo=UTC)
    trials = [i for i in est.items if i.kind == "gen"]
    for k, item in enumerate(trials):  # fits took twice their estimate, evaluations three times
        write_eval_row({"eval_id": f"e{k}", "generator": "cvae", "dataset": "breastmnist", "size": 28,
                        "status": "finished", "trial_id": item.run_id, "fit_seconds": 2 * item.parts["fit_s"],
                        "wall_seconds": 3 * item.parts["eval_s"], "fit_resumed_from": 0,
                        "created_at": end - timedelta(seconds=10 * k)}, out)
    write_estimate(out, est)
    table = build_report([out], tmp_path / "report").tables["generator_estimated_vs_actual"]
    first = table.rows[0][1]
    fit, ev = trials[0].parts["fit_s"], trials[0].parts["eval_s"]
    assert [c.text for c in first[1:]] in ([f"{fit:.1f}", f"{2 * fit:.1f}", f"{ev:.1f}", f"{3 * ev:.1f}",
                                            f"{(2 * fit + 3 * ev) / (fit + ev):.2f}"],)
    labels = [label for label, _ in table.rows]
    study_row = "study: first fit's start to last row"
    assert labels[2:] == ["reference classifiers", "all 2 trials and references", study_row]
    ref = next(i for i in est.items if i.kind == "ref").seconds
    assert table.cell("all 2 trials and references", "eval estimated (s)").text == f"{2 * ev + ref:.1f}"
    assert table.cell(study_row, "eval actual (s)").text == f"{10 + 2 * fit + 3 * ev:.1f}"


def test_a_generator_study_run_writes_its_estimate_first(tmp_path, monkeypatch):
    """The driver writes OUT/estimate.json (from --calibration FILE) before Ray starts."""
    from medaug.sweep import driver
    from medaug.sweep.driver import run_study

    study = load_study(write(tmp_path / "g.yaml", GEN_STUDY))
    cal_file = save_calibration(gen_calibration(study), tmp_path / "site-cpu-1t.json")

    def no_ray(*args, **kwargs):
        raise RuntimeError("stop before Ray")

    monkeypatch.setattr(driver, "ray_init", no_ray)
    with pytest.raises(RuntimeError, match="stop before Ray"):
        run_study(study, "local", tmp_path / "out", calibration=cal_file, progress=False, max_concurrent=2)
    data = json.loads((tmp_path / "out" / "estimate.json").read_text())
    assert data["complete"] and data["calibration"] == str(cal_file)
    expected = _gen_estimate(study, gen_calibration(study))
    assert {i["run_id"] for i in data["items"] if i["kind"] == "gen"} == {study.trial(c).trial_id for c in study.cells}
    assert data["trial_seconds"] == pytest.approx(expected.trial_seconds)


def test_calibrating_a_per_class_dcgan_uses_its_single_class_batches(one_thread):
    """dcgan refuses mixed-class batches: the fit rate is measured on a batch of its own batching."""
    from medaug.sweep.calibrate import GeneratorTarget, measure_generator
    from medaug.train.device import resolve_device

    got = measure_generator(GeneratorTarget("dcgan", 28, 1, {"width": 0.25, "batch_size": 16}), 0.1,
                            resolve_device("cpu"))
    assert got["fit_images_per_s"] > 0 and got["fit_images"] % 16 == 0 and got["sample_images_per_s"] > 0
