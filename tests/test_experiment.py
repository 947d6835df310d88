"""The experiment unit: spec validation, run -> one Parquet row, determinism, the best-epoch copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medaug.errors import MedaugError
from medaug.experiment import ExperimentSpec, fit_and_test, run, run_dir
from medaug.store.results import COLUMN_NAMES, read_results, result_path

FAST = dict(epochs=2, batch_size=16)


def test_spec_defaults_are_seed_000() -> None:
    spec = ExperimentSpec(dataset="breastmnist")
    assert (spec.optimizer, spec.lr, spec.momentum, spec.epochs, spec.batch_size) == ("sgd", 1e-3, 0.9, 20, 64)
    assert spec.select_metric == "acc" and spec.classifier == "cnn"


def test_every_spec_field_is_a_result_column() -> None:
    from medaug.experiment import SPEC_FIELDS

    assert set(SPEC_FIELDS) <= set(COLUMN_NAMES)


def test_freeze_epochs_only_for_transfer_classifiers(tiny_root: Path, tmp_path: Path) -> None:
    spec = ExperimentSpec(dataset="breastmnist", epochs=2, freeze_epochs=1)
    with pytest.raises(MedaugError, match="only transfer classifiers"):
        run(spec, tmp_path, data_root=tiny_root, verify_md5=False)
    with pytest.raises(MedaugError, match="freeze_epochs"):
        ExperimentSpec(dataset="breastmnist", epochs=2, freeze_epochs=2)


def test_spec_run_id_is_stable_and_spec_sensitive() -> None:
    a = ExperimentSpec(dataset="breastmnist", seed=1)
    assert a.run_id == ExperimentSpec(dataset="breastmnist", seed=1).run_id
    assert a.run_id != a.replace(lr=0.01).run_id
    assert ExperimentSpec.from_dict(json.loads(a.canonical_json())) == a


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"epochs": 0}, "epochs"), ({"optimizer": "rmsprop"}, "optimizer"), ({"lr": -1.0}, "lr"),
     ({"select_metric": "f1"}, "select_metric"), ({"milestones": (0.8, 0.2)}, "milestones"),
     ({"wrs": "yes"}, "wrs")],
)
def test_spec_refuses_bad_values(changes: dict, field: str) -> None:
    with pytest.raises(MedaugError, match=f"spec field '{field}'"):
        ExperimentSpec(dataset="breastmnist", **changes)


def test_spec_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(MedaugError, match=r"unknown field\(s\) \['epoch'\]"):
        ExperimentSpec.from_dict({"dataset": "breastmnist", "epoch": 3})


def test_run_writes_one_complete_row_readable_by_pandas_and_duckdb(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = []
    for aug in ("none", "sharpness-contrast-flip"):
        spec = ExperimentSpec(dataset="pathmnist", augmentation=aug, wrs=aug == "none", **FAST)
        rows.append(run(spec, out, data_root=tiny_root, verify_md5=False))
    row = rows[0]
    assert set(row) <= set(COLUMN_NAMES)
    assert 0 <= row["test_acc"] <= 1 and 0 <= row["test_auc"] <= 1
    assert len(row["history"]) == 2 and row["best_epoch"] in (1, 2)
    assert np.array(row["test_confusion"]).shape == (9, 9) and np.sum(row["test_confusion"]) == 27
    assert row["n_train"] == 90 and row["task"] == "multi-class" and row["status"] == "finished"
    assert not (run_dir(out, ExperimentSpec(dataset="pathmnist", wrs=True, **FAST)) / "state.pt").exists()

    df = pd.read_parquet(out / "results")
    assert len(df) == 2 and set(df["augmentation"]) == {"none", "sharpness-contrast-flip"}
    assert df["history"].iloc[0][0]["epoch"] == 1
    assert read_results(out).shape == df.shape

    import duckdb

    con = duckdb.connect()
    got = con.execute(
        f"select augmentation, test_acc, len(history) as n from read_parquet('{out}/**/*.parquet') order by augmentation"
    ).fetchall()
    assert [(g[0], g[2]) for g in got] == [("none", 2), ("sharpness-contrast-flip", 2)]
    assert got[0][1] == pytest.approx(df.set_index("augmentation").loc["none", "test_acc"])


def test_progress_log_has_one_line_per_epoch(tiny_root: Path, tmp_path: Path) -> None:
    spec = ExperimentSpec(dataset="breastmnist", **FAST)
    seen: list[dict] = []
    run(spec, tmp_path, data_root=tiny_root, verify_md5=False, on_epoch=seen.append)
    lines = (run_dir(tmp_path, spec) / "progress.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2] == [s["epoch"] for s in seen]
    # training again from epoch 1 (here: --overwrite) starts the log afresh, no duplicate epochs
    run(spec, tmp_path, data_root=tiny_root, verify_md5=False, overwrite=True)
    lines = (run_dir(tmp_path, spec) / "progress.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_same_seed_same_numbers_on_cpu(tiny_root: Path, tmp_path: Path) -> None:
    spec = ExperimentSpec(dataset="pathmnist", augmentation="sharpness-contrast-flip", wrs=True, **FAST)
    a = run(spec, tmp_path / "a", data_root=tiny_root, verify_md5=False, device="cpu")
    b = run(spec, tmp_path / "b", data_root=tiny_root, verify_md5=False, device="cpu")
    keys = ("test_acc", "test_auc", "val_acc", "best_epoch", "test_confusion")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    c = run(spec.replace(seed=1), tmp_path / "c", data_root=tiny_root, verify_md5=False, device="cpu")
    assert [h["train_loss"] for h in c["history"]] != [h["train_loss"] for h in a["history"]]


def test_finished_result_is_refused_unless_overwrite(tiny_root: Path, tmp_path: Path) -> None:
    spec = ExperimentSpec(dataset="breastmnist", epochs=1, batch_size=32)
    run(spec, tmp_path, data_root=tiny_root, verify_md5=False)
    before = result_path(tmp_path, spec.run_id).stat().st_mtime_ns
    with pytest.raises(MedaugError, match="finished result for this spec exists; pass --overwrite"):
        run(spec, tmp_path, data_root=tiny_root, verify_md5=False)
    assert result_path(tmp_path, spec.run_id).stat().st_mtime_ns == before
    run(spec, tmp_path, data_root=tiny_root, verify_md5=False, overwrite=True)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("classifier", "vgg99", "unknown classifier 'vgg99'"),
    ("augmentation", "mixup", "unknown augmentation 'mixup'"),
    ("dataset", "nomnist", "unknown dataset 'nomnist'"),
    ("size", 32, "unsupported size 32"),
])
def test_bad_names_refused_before_anything_is_written(tiny_root: Path, tmp_path: Path, field: str, value,
                                                      message: str) -> None:
    spec = ExperimentSpec(dataset="breastmnist", epochs=1).replace(**{field: value})
    with pytest.raises(MedaugError, match=message):
        run(spec, tmp_path / "out", data_root=tiny_root, verify_md5=False)
    assert not (tmp_path / "out").exists()


def test_tested_weights_are_a_copy_of_the_best_epoch_not_the_last(tiny_root: Path, monkeypatch) -> None:
    """MedMNIST's script keeps a reference to the live model as 'best'; we must keep a copy."""
    import dataclasses

    from medaug.data.medmnist import load_medmnist
    from medaug.train import loop

    data = load_medmnist("breastmnist", root=tiny_root, verify=False)
    scripted_acc = [0.5, 0.9, 0.6, 0.7]  # val ACC after epochs 1..4: epoch 2 is best
    snapshots: list[dict[str, torch.Tensor]] = []
    real = loop.evaluate_model

    def scripted(model, images, device, channels_last=False, tta="none"):
        metrics, loss = real(model, images, device, channels_last, tta)
        if len(snapshots) < len(scripted_acc):  # the per-epoch validations come first
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
            metrics = dataclasses.replace(metrics, acc=scripted_acc[len(snapshots) - 1])
        return metrics, loss

    monkeypatch.setattr(loop, "evaluate_model", scripted)
    spec = ExperimentSpec(dataset="breastmnist", epochs=4, batch_size=16, lr=0.05)
    fit = fit_and_test(spec, data.train, data.val, data.test, device="cpu")
    assert fit.best_epoch == 2
    best, last = snapshots[1], snapshots[3]
    tested = fit.model.state_dict()
    assert any(not torch.equal(best[k], last[k]) for k in best)
    assert all(torch.equal(tested[k], best[k]) for k in best)


def test_resume_from_saved_state_gives_identical_result(tiny_root: Path, tmp_path: Path) -> None:
    from medaug.data.medmnist import load_medmnist

    data = load_medmnist("pathmnist", root=tiny_root, verify=False)
    spec = ExperimentSpec(dataset="pathmnist", augmentation="rot-shift-flip", wrs=True, epochs=3, batch_size=16)
    full = fit_and_test(spec, data.train, data.val, data.test, device="cpu")

    state = tmp_path / "state.pt"

    def stop_after_2(record: dict) -> None:  # like a kill after epoch 2 was saved
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_and_test(spec, data.train, data.val, data.test, device="cpu", state_path=state, on_epoch=stop_after_2)
    resumed = fit_and_test(spec, data.train, data.val, data.test, device="cpu", state_path=state)
    assert [h["train_loss"] for h in resumed.outcome.history] == [h["train_loss"] for h in full.outcome.history]
    assert resumed.test.acc == full.test.acc and resumed.best_epoch == full.best_epoch


def test_frozen_backbone_epochs_train_only_the_head(tiny_root: Path) -> None:
    from medaug.classifiers import build_classifier
    from medaug.data.medmnist import load_medmnist
    from medaug.train.loop import train_classifier

    data = load_medmnist("pathmnist", root=tiny_root, verify=False)
    spec = ExperimentSpec(dataset="pathmnist", classifier="resnet18_tv", epochs=2, freeze_epochs=1, batch_size=45,
                          lr=0.01)
    torch.manual_seed(0)
    model = build_classifier("resnet18_tv", 3, 9, 28)
    snaps = [{k: v.clone() for k, v in model.state_dict().items()}]
    train_classifier(model, data.train, data.val, spec.train_config(), torch.device("cpu"),
                     on_epoch=lambda _: snaps.append({k: v.clone() for k, v in model.state_dict().items()}))
    conv = next(k for k in snaps[0] if k.endswith("conv1.weight"))
    head = next(k for k in snaps[0] if k.endswith("fc.weight"))
    assert torch.equal(snaps[0][conv], snaps[1][conv])  # epoch 1: backbone frozen
    assert not torch.equal(snaps[0][head], snaps[1][head])  # ... while the head learns
    assert not torch.equal(snaps[1][conv], snaps[2][conv])  # epoch 2: everything trains


def test_run_with_a_synthetic_set_mixes_it_in_and_records_provenance(tiny_root: Path, tmp_path: Path) -> None:
    from medaug.data.medmnist import load_medmnist
    from medaug.generators import build_generator
    from medaug.generators import baseline  # noqa: F401  (registers class-mean-noise)
    from medaug.generators.strategies import Strategy
    from medaug.generators.synthesize import synthesize

    data = load_medmnist("breastmnist", root=tiny_root, verify=False)
    gen = build_generator("class-mean-noise", 1, 28, 2, device="cpu")
    ckpt = gen.fit(data.train, tmp_path / "gen")
    made = synthesize(ckpt, Strategy("per-class", classes=("malignant",), count=12), seed=0,
                      out=tmp_path / "syn.zarr", splits=data, device="cpu")
    spec = ExperimentSpec(dataset="breastmnist", synthetic=made.ref, epochs=1, batch_size=32)
    row = run(spec, tmp_path / "out", data_root=tiny_root, verify_md5=False)
    assert row["n_synthetic"] == 12 and row["n_train"] == 60
    assert row["synthetic_id"] == made.set_id
    assert json.loads(row["synthetic_provenance"])["generator"] == "class-mean-noise"
    df = pd.read_parquet(tmp_path / "out" / "results")
    assert df.loc[0, "synthetic"] == made.ref

    other = tmp_path / "other"
    from conftest import make_medmnist_npz

    make_medmnist_npz(other / "breastmnist.npz", seed=5)  # same name, different train split
    with pytest.raises(MedaugError, match="leakage"):
        run(spec, tmp_path / "out2", data_root=other, verify_md5=False)
    assert not (tmp_path / "out2").exists()
