"""Training recipes (issue 11): expansion into spec fields, overrides, unchanged seed-000
run_ids, and the training options recipes brought (label smoothing, weight EMA, warm-up and
linear schedules, min_steps, test-time augmentation)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from medaug.cli import main
from sweep_helpers import tiny_data  # noqa: F401  (fixture: a learnable tiny breastmnist)
from medaug.experiment import ExperimentSpec, fit_and_test, run
from medaug.train import loop
from medaug.train.loop import TrainConfig, WeightEMA, lr_at, make_criterion, predict, tta_views
from medaug.train.recipes import FAST, MEDMNIST_V2, RECIPES, SEED000


def spec(**fields) -> ExperimentSpec:
    return ExperimentSpec.from_dict({"dataset": "breastmnist", **fields})


# --- expansion -------------------------------------------------------------------------------

@pytest.mark.parametrize("recipe", list(RECIPES.values()), ids=list(RECIPES))
def test_a_recipe_expands_into_its_documented_fields(recipe) -> None:
    s = spec(recipe=recipe.name)
    assert s.recipe == recipe.name
    for name, value in recipe.fields.items():
        assert getattr(s, name) == value, name


def test_medmnist_v2_is_the_papers_protocol_and_fast_is_small() -> None:
    v2 = spec(recipe="medmnist-v2")
    assert (v2.classifier, v2.optimizer, v2.lr, v2.epochs, v2.schedule, v2.milestones, v2.batch_size,
            v2.augmentation) == ("resnet18", "adam", 1e-3, 100, "multistep", (0.5, 0.75), 128, "none")
    fast = spec(recipe="fast")
    assert fast.classifier == "fastnet" and fast.ema > 0 and fast.label_smoothing > 0 and fast.schedule == "linear"


def test_an_explicit_field_overrides_the_recipe() -> None:
    s = spec(recipe="fast", epochs=3, lr=0.05)
    assert (s.epochs, s.lr) == (3, 0.05)
    assert (s.classifier, s.ema, s.min_steps) == ("fastnet", FAST.fields["ema"], FAST.fields["min_steps"])


def test_study_variables_are_never_part_of_a_recipe() -> None:
    for recipe in RECIPES.values():
        assert not {"dataset", "size", "augmentation", "wrs", "synthetic", "tta", "seed"} & set(recipe.fields)


def test_seed000_run_ids_are_pinned() -> None:
    """Run ids from before recipes existed (computed on the commit before them)."""
    assert ExperimentSpec(dataset="breastmnist").run_id == "breastmnist-28-cnn-none-nowrs-s0-1fc069bb81"
    assert spec(recipe="seed000").run_id == "breastmnist-28-cnn-none-nowrs-s0-1fc069bb81"
    assert spec(dataset="bloodmnist", augmentation="sharpness-contrast-flip", wrs=True, seed=3, schedule="cosine",
                lr=0.01).run_id == "bloodmnist-28-cnn-sharpness-contrast-flip-wrs-s3-08a7459f44"
    # a spec spelled field by field (no recipe) keeps its id; the same values under medmnist-v2 do not
    fields = dict(dataset="organamnist", classifier="resnet18", optimizer="adam", schedule="multistep", epochs=100,
                  batch_size=128)
    assert spec(**fields).run_id == "organamnist-28-resnet18-none-nowrs-s0-d0f2d0a6cc"
    assert spec(recipe="medmnist-v2", **fields).run_id != spec(**fields).run_id


def test_a_recipe_other_than_seed000_hashes_its_version(monkeypatch) -> None:
    before = spec(recipe="fast").run_id
    monkeypatch.setitem(RECIPES, "fast", dataclasses.replace(FAST, version=FAST.version + 1))
    assert spec(recipe="fast").run_id != before


def test_spec_round_trips_through_its_dict() -> None:
    s = spec(recipe="fast", tta="flip-shift", seed=4)
    assert ExperimentSpec.from_dict(s.to_dict()) == s


# --- refusals, through the CLI ---------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["--recipe", "fastest"], "--recipe: spec field 'recipe' = 'fastest'; expected one of seed000, medmnist-v2, fast"),
    (["--recipe", "fast", "--optimizer", "adam"], "--nesterov: spec field 'nesterov' = True; expected false with "
                                                  "optimizer 'adam'"),
    (["--tta", "sideways"], "argument --tta: invalid choice: 'sideways'"),
    (["--ema", "1"], "--ema: spec field 'ema' = 1.0; expected a finite number in [0, 1)"),
    (["--warmup", "-0.1"], "--warmup: spec field 'warmup' = -0.1; expected a finite number in [0, 1)"),
    (["--label-smoothing", "nan"], "--label-smoothing: spec field 'label_smoothing' = nan"),
])
def test_a_bad_recipe_or_conflicting_field_is_one_line_exit_2(tmp_path: Path, capsys, args, expected) -> None:
    code = main(["train", "--dataset", "breastmnist", "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("medaug: error: ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


# --- what the new training options do --------------------------------------------------------

def test_label_smoothing_changes_the_loss_as_defined() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    target = torch.tensor([0])
    logp = torch.log_softmax(logits, 1)[0]
    expected = -(0.7 + 0.1) * logp[0] - 0.1 * logp[1] - 0.1 * logp[2]  # 0.3 spread over 3 classes
    assert torch.isclose(make_criterion("multi-class", 0.3)(logits, target), expected)
    assert torch.isclose(make_criterion("multi-class")(logits, target), -logp[0])
    bce = make_criterion("multi-label, binary-class", 0.2)(torch.tensor([[0.3]]), torch.tensor([[1.0]]))
    assert torch.isclose(bce, nn.functional.binary_cross_entropy_with_logits(torch.tensor([[0.3]]),
                                                                             torch.tensor([[0.9]])))


def test_weight_ema_averages_with_a_ramped_decay() -> None:
    model = nn.Linear(2, 1)
    ema = WeightEMA(model, decay=0.99)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # first update: decay min(0.99, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.model.weight, d * start + (1 - d) * model.weight)
    assert not torch.equal(ema.model.weight, model.weight)


def test_ema_weights_are_the_ones_validated_kept_and_tested(tiny_root: Path, monkeypatch) -> None:
    from medaug.data.medmnist import load_medmnist

    data = load_medmnist("breastmnist", root=tiny_root, verify=False)
    seen: list[tuple[nn.Module, dict[str, torch.Tensor]]] = []
    live: list[nn.Module] = []
    real = loop.evaluate_model

    def spy(model, images, device, channels_last=False, tta="none"):
        seen.append((model, {k: v.clone() for k, v in model.state_dict().items()}))
        return real(model, images, device, channels_last, tta)

    real_train = loop.train_classifier

    def keep_live(model, *args, **kwargs):
        live.append(model)
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate_model", spy)
    monkeypatch.setattr(loop, "train_classifier", keep_live)
    s = spec(recipe="fast", epochs=3, min_steps=0, batch_size=16)
    fit = fit_and_test(s, data.train, data.val, data.test, device="cpu")
    model = live[0]
    per_epoch = seen[:3]
    assert all(m is not model for m, _ in per_epoch)  # the average is validated, not the live network
    # the live weights after the last step differ from the averaged ones validated after it
    model_state = fit.outcome.best_state
    assert fit.best_epoch in (1, 2, 3)
    assert all(torch.equal(model_state[k], per_epoch[fit.best_epoch - 1][1][k]) for k in model_state)
    assert all(torch.equal(fit.model.state_dict()[k], model_state[k]) for k in model_state)


def test_ema_run_differs_from_the_same_run_without_it(tiny_root: Path) -> None:
    from medaug.data.medmnist import load_medmnist

    data = load_medmnist("breastmnist", root=tiny_root, verify=False)
    base = spec(recipe="fast", epochs=2, min_steps=0, batch_size=16)
    with_ema = fit_and_test(base, data.train, data.val, data.test, device="cpu").outcome.history
    without = fit_and_test(base.replace(ema=0.0), data.train, data.val, data.test, device="cpu").outcome.history
    assert [h["train_loss"] for h in with_ema] == [h["train_loss"] for h in without]  # same training
    assert [h["val_loss"] for h in with_ema] != [h["val_loss"] for h in without]  # another evaluated model


def test_tta_views_and_averaged_logits_by_hand() -> None:
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)
    views = tta_views(images, "flip-shift")
    assert len(views) == 10
    assert torch.equal(views[1], images.flip(-1))
    down = images.clone()
    down[..., 1:, :] = images[..., :-1, :]  # dy = +1: content moves down one row, row 0 repeats
    assert torch.equal(views[2], down)
    left = images.clone()
    left[..., :, :-1] = images[..., :, 1:]  # dx = -1: the last column repeats
    assert torch.equal(views[5], left)
    assert [len(tta_views(images, m)) for m in ("none", "flip", "shift")] == [1, 2, 5]

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    labels = torch.tensor([0, 2])
    scores, _ = predict(model, images, labels, "multi-class", tta="flip-shift")
    with torch.no_grad():
        logits = torch.stack([model(v.float() / 127.5 - 1) for v in views]).mean(0)
    assert np.allclose(scores, torch.softmax(logits, 1).numpy(), atol=1e-6)
    plain, _ = predict(model, images, labels, "multi-class")
    assert not np.allclose(plain, scores)


def test_lr_schedules_step_by_step() -> None:
    cfg = TrainConfig(lr=0.1, schedule="linear", warmup=0.25, epochs=2)
    lrs = [lr_at(cfg, step, steps_per_epoch=4, epochs=2) for step in range(8)]
    assert lrs[:2] == pytest.approx([0.05, 0.1])  # 2 warm-up steps up to 0.1
    assert lrs[2:] == pytest.approx([0.1 * (8 - s) / 6 for s in range(2, 8)])  # then linear to 0 after the last
    # cosine and multistep change per epoch, as torch's schedulers stepped once per epoch
    for schedule, torch_schedule in (("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10)),
                                     ("multistep", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [5, 8], 0.1))):
        cfg = TrainConfig(lr=0.1, schedule=schedule, epochs=10, milestones=(0.5, 0.75))
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        sched = torch_schedule(opt)
        for epoch in range(10):
            assert lr_at(cfg, epoch * 3 + 2, 3, 10) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
            opt.step()
            sched.step()


def test_min_steps_lengthens_small_sets_only() -> None:
    cfg = TrainConfig(epochs=10, min_steps=400, batch_size=64)
    assert cfg.epochs_for(546) == 45 and cfg.epochs_for(34_561) == 10
    assert TrainConfig(epochs=10).epochs_for(5) == 10


# --- through `run` ---------------------------------------------------------------------------

def test_a_fast_run_writes_its_recipe_and_fields_and_repeats_on_cpu(tiny_root: Path, tmp_path: Path) -> None:
    s = spec(recipe="fast", epochs=2, min_steps=8, batch_size=16, tta="flip")
    rows = [run(s, tmp_path / name, data_root=tiny_root, verify_md5=False) for name in ("a", "b")]
    row = pd.read_parquet(tmp_path / "a" / "results" / f"{s.run_id}.parquet").iloc[0]
    assert row["recipe"] == "fast" and row["recipe_version"] == FAST.version and row["tta"] == "flip"
    assert (row["classifier"], row["nesterov"], row["ema"], row["label_smoothing"], row["schedule"]) == (
        "fastnet", True, FAST.fields["ema"], FAST.fields["label_smoothing"], "linear")
    n_train = row["n_train"]
    assert row["epochs_trained"] == max(2, math.ceil(8 / math.ceil(n_train / 16))) == len(row["history"])
    for key in ("test_acc", "test_auc", "val_acc", "best_epoch"):
        assert rows[0][key] == rows[1][key]
    assert [h["train_loss"] for h in rows[0]["history"]] == [h["train_loss"] for h in rows[1]["history"]]


def test_resume_with_ema_gives_the_uninterrupted_result(tiny_root: Path, tmp_path: Path) -> None:
    from medaug.data.medmnist import load_medmnist

    data = load_medmnist("breastmnist", root=tiny_root, verify=False)
    s = spec(recipe="fast", epochs=3, min_steps=0, batch_size=16)
    whole = fit_and_test(s, data.train, data.val, data.test, device="cpu")
    state = tmp_path / "state.pt"

    class Stop(Exception):
        pass

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        fit_and_test(s, data.train, data.val, data.test, device="cpu", state_path=state, on_epoch=stop_after_two)
    assert state.exists()
    resumed = fit_and_test(s, data.train, data.val, data.test, device="cpu", state_path=state)
    def timeless(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert timeless(resumed.outcome.history) == timeless(whole.outcome.history)
    assert resumed.test == whole.test


def test_translate_moves_each_image_by_its_offset_with_edge_fill() -> None:
    from medaug.augment.ops import random_translate, translate

    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)
    moved = translate(images, torch.tensor([1, 0]), torch.tensor([0, -1]))
    assert moved[0, 0].tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert moved[1, 0].tolist() == [[17, 18, 19, 19], [21, 22, 23, 23], [25, 26, 27, 27], [29, 30, 31, 31]]
    big = torch.randint(0, 255, (64, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = random_translate(big, 2, torch.Generator().manual_seed(1))
    assert torch.equal(a, random_translate(big, 2, torch.Generator().manual_seed(1)))  # seeded
    assert not torch.equal(a, big) and torch.equal(random_translate(big, 0, torch.Generator()), big)
    # every image is one of the 25 shifts of itself by at most 2 px
    shifts = [translate(big, torch.full((64,), dy), torch.full((64,), dx)) for dy in range(-2, 3) for dx in range(-2, 3)]
    assert all(any(torch.equal(a[i], s[i]) for s in shifts) for i in range(64))


def test_translate_field_changes_training_only_when_set(tiny_root: Path) -> None:
    from medaug.data.medmnist import load_medmnist

    data = load_medmnist("breastmnist", root=tiny_root, verify=False)
    base = spec(epochs=1, batch_size=16)
    plain = fit_and_test(base, data.train, data.val, data.test, device="cpu").outcome.history
    moved = fit_and_test(base.replace(translate=0.1), data.train, data.val, data.test, device="cpu").outcome.history
    assert plain[0]["train_loss"] != moved[0]["train_loss"]


def test_fast_recipe_under_torchrun_is_data_parallel(tiny_data: Path, tmp_path: Path) -> None:  # noqa: F811
    """EMA and the recipe's translations under DDP: every rank draws the same global batch and
    averages the same weights; the row matches one process within the DDP tolerances."""
    import os
    import subprocess
    import sys

    args = ["train", "--dataset", "breastmnist", "--recipe", "fast", "--epochs", "3", "--min-steps", "0", "--lr", "0.02",
            "--batch-size", "32", "--data-root", str(tiny_data), "--no-verify-md5", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "medaug.cli", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "medaug.cli", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr
    ref = pd.read_parquet(tmp_path / "one" / "results").iloc[0]
    got = pd.read_parquet(tmp_path / "two" / "results").iloc[0]
    assert (ref.world_size, got.world_size, got.recipe, got.classifier) == (1, 2, "fast", "fastnet")
    assert got.run_id == ref.run_id
    for g, r in zip(got.history, ref.history, strict=True):  # BatchNorm sees each rank's half batch
        assert abs(g["train_loss"] - r["train_loss"]) <= 0.1 * r["train_loss"] + 0.01, (g, r)


def test_every_recipe_composes_with_every_augmentation_wrs_synthetic_set_and_transfer(tiny_root: Path,
                                                                                       tmp_path: Path) -> None:
    """One short epoch of each recipe with each augmentation pipeline (and WRS, a synthetic
    set, a torchvision transfer network): each trains, tests and records its recipe."""
    from medaug.augment import AUGMENTATIONS
    from medaug.data.medmnist import load_medmnist
    from medaug.generators import baseline  # noqa: F401  (registers class-mean-noise)
    from medaug.generators import build_generator
    from medaug.generators.strategies import Strategy
    from medaug.generators.synthesize import synthesize

    data = load_medmnist("pathmnist", root=tiny_root, verify=False)  # 3 channels: the hue op runs too
    short = {"epochs": 1, "min_steps": 0, "batch_size": 32}
    cases = [(recipe, augmentation) for recipe in ("seed000", "fast") for augmentation in AUGMENTATIONS.names()]
    for recipe, augmentation in cases + [("medmnist-v2", "rot-shift-flip")]:  # (its ResNet-18 is slow on a CPU)
        s = ExperimentSpec.from_dict({"dataset": "pathmnist", "recipe": recipe, "augmentation": augmentation,
                                      "wrs": augmentation in ("none", "rot-shift-flip"), **short})
        fit = fit_and_test(s, data.train, data.val, data.test, device="cpu")
        assert len(fit.outcome.history) == 1 and 0 <= fit.test.acc <= 1, (recipe, augmentation)
    gen = build_generator("class-mean-noise", 1, 28, 2, device="cpu")
    breast = load_medmnist("breastmnist", root=tiny_root, verify=False)
    made = synthesize(gen.fit(breast.train, tmp_path / "gen"), Strategy("per-class", classes=("malignant",),
                                                                        count=12),
                      seed=0, out=tmp_path / "syn.zarr", splits=breast, device="cpu")
    row = run(spec(recipe="fast", synthetic=made.ref, tta="shift", **short), tmp_path / "out", data_root=tiny_root,
              verify_md5=False)
    assert (row["recipe"], row["n_synthetic"], row["tta"]) == ("fast", 12, "shift")
    transfer = spec(recipe="fast", classifier="resnet18_tv", pretrained=False, **short)
    row = run(transfer, tmp_path / "out", data_root=tiny_root, verify_md5=False)
    assert (row["recipe"], row["classifier"], row["classifier_weights"]) == ("fast", "resnet18_tv", None)


def test_fast_on_the_real_breastmnist_writes_its_fields_and_repeats(real_root: Path, tmp_path: Path) -> None:
    """The real file (546 train images), the recipe shortened to 6 epochs: the row carries the
    recipe's expanded fields, and the same seed gives the same numbers on CPU."""
    s = spec(recipe="fast", epochs=6, min_steps=0)
    rows = [run(s, tmp_path / name, data_root=real_root) for name in ("a", "b")]
    row = rows[0]
    assert (row["recipe"], row["recipe_version"], row["classifier"], row["translate"], row["n_train"]) == (
        "fast", FAST.version, "fastnet", FAST.fields["translate"], 546)
    assert row["epochs_trained"] == 6 and row["val_auc"] > 0.75, row["history"]  # a constant answer: AUC 0.5
    for key in ("test_acc", "test_auc", "val_acc", "best_epoch"):
        assert rows[0][key] == rows[1][key]


def test_a_state_saved_before_recipes_still_resumes(tiny_root: Path) -> None:
    """A seed-000 config names the same fields in its state identity as before the new ones
    existed (an interrupted run resumes after the upgrade); a recipe's config names them."""
    import json

    from medaug.data.medmnist import load_medmnist
    from medaug.train.loop import state_identity

    data = load_medmnist("breastmnist", root=tiny_root, verify=False)
    before = {"augmentation", "wrs", "optimizer", "lr", "momentum", "weight_decay", "schedule", "milestones",
              "epochs", "batch_size", "seed", "select_metric", "freeze_epochs", "name"}
    plain = json.loads(state_identity(spec().train_config(), data.train, data.val))["config"]
    assert set(plain) == before
    fast = json.loads(state_identity(spec(recipe="fast").train_config(), data.train, data.val))["config"]
    assert {"ema", "label_smoothing", "translate", "nesterov", "warmup", "min_steps"} <= set(fast)
