"""Every figure is written as a non-empty PNG and SVG; tolerant readers do not crash on odd input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis_rows import known_study, make_row, write_loss_table, write_rows, write_synthetic_store

from medaug.analysis import plots
from medaug.analysis.load import load_results
from medaug.analysis.tables import Grid, best_methods, gains
from medaug.errors import MedaugError


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = known_study(tmp_path_factory.mktemp("plots") / "out")
    write_rows(out, [make_row("dermamnist", seed=s, acc=0.7) for s in range(2)])
    return Grid(load_results(out))


def written(fig, tmp_path, name):
    assert fig is not None, name
    paths = plots.save(plots.render(fig, name, "caption"), tmp_path)
    png, svg = paths
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 2000
    assert b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 2000
    return paths


def test_classifier_figures(grid, tmp_path):
    rows = grid.rows("breastmnist", best_methods(grid)["breastmnist"])
    written(plots.confusion_figure(rows, "breastmnist"), tmp_path, "confusion")
    written(plots.curves_figure(rows, "breastmnist"), tmp_path, "curves")
    written(plots.class_distribution_figure(grid.df), tmp_path, "classes")
    written(plots.gain_heatmap_figure(gains(grid)), tmp_path, "heatmap")
    assert plots.gain_heatmap_figure([]) is None
    no_history = grid.df.assign(history=None)
    assert plots.curves_figure(no_history, "x") is None


def test_multilabel_confusion_is_drawn(tmp_path):
    rows = pd.DataFrame({"test_confusion": [[[50, 3, 4, 10], [40, 5, 6, 12], [30, 1, 2, 20]]],
                         "class_names": [["a", "b", "c"]], "task": ["multi-label, binary-class"]})
    written(plots.confusion_figure(rows, "chest"), tmp_path, "ml")


def test_generator_loss_curves_tolerant(tmp_path):
    path = write_loss_table(tmp_path / "run")
    assert plots.find_loss_tables(tmp_path / "run") == [path]
    written(plots.generator_loss_figure(plots.read_loss_table(path), "cvae"), tmp_path, "losses")
    # no column named *loss*: other numeric columns are plotted against the step
    odd = pd.DataFrame({"iteration": range(5), "g": np.linspace(2, 1, 5), "d": np.linspace(0.5, 0.9, 5)})
    written(plots.generator_loss_figure(odd, "odd"), tmp_path, "odd")
    assert plots.generator_loss_figure(pd.DataFrame({"name": ["a", "b"]}), "text only") is None
    # medaug's generator runs write losses_steps.csv and losses_epochs.csv: the per-epoch table is used
    run = tmp_path / "cvae-run"
    run.mkdir()
    pd.DataFrame({"epoch": [1, 1, 2, 2], "step": [0, 1, 0, 1], "global_step": [0, 1, 2, 3],
                  "loss": [3.0, 2.5, 2.0, 1.8]}).to_csv(run / "losses_steps.csv", index=False)
    pd.DataFrame({"epoch": [1, 2], "loss": [2.7, 1.9], "val_loss": [2.8, 2.1]}).to_csv(run / "losses_epochs.csv",
                                                                                        index=False)
    assert plots.find_loss_tables(run) == [run / "losses_epochs.csv"]
    written(plots.generator_loss_figure(plots.read_loss_table(run / "losses_steps.csv"), "steps"), tmp_path, "steps")
    (tmp_path / "broken_losses.parquet").write_bytes(b"not parquet")
    assert plots.read_loss_table(tmp_path / "broken_losses.parquet") is None


@pytest.mark.parametrize("channels", [1, 3])
def test_montage_from_zarr(tmp_path, channels):
    ref = write_synthetic_store(tmp_path / "syn.zarr", "g1", classes=3, per_class=4, channels=channels,
                                class_names=["x", "y", "z"])
    store, group = plots.parse_synthetic_ref(ref)
    written(plots.montage_figure(store, group, per_class=3), tmp_path, f"montage{channels}")


def test_montage_bad_store_is_a_clean_error(tmp_path):
    with pytest.raises(MedaugError, match="no such Zarr store"):
        plots.montage_figure(tmp_path / "nope.zarr", "g")
    write_synthetic_store(tmp_path / "syn.zarr", "g1")
    with pytest.raises(MedaugError, match="not a readable Zarr group"):
        plots.montage_figure(tmp_path / "syn.zarr", "missing-group")


def test_fidelity_utility_scatter_tolerates_missing_columns(tmp_path):
    ev = pd.DataFrame({"generator": ["cvae", "cgan"], "dataset": ["breastmnist"] * 2, "fid": [30.0, 20.0],
                       "fid_floor": [5.0, 5.0], "precision": [0.6, 0.7], "recall": [0.4, 0.3],
                       "tstr_acc": [0.7, 0.6], "trtr_acc": [0.8, 0.8]})
    util = pd.DataFrame({"dataset": ["breastmnist"] * 2, "generator": ["cvae", "cgan"], "gain_pp": [3.3, 0.3],
                         "verdict": ["improved", ""]})
    written(plots.fidelity_utility_figure(ev, util), tmp_path, "fid_util")
    only_fid = ev[["generator", "dataset", "fid"]].assign(precision=np.nan, recall=np.nan, tstr_acc=np.nan,
                                                           trtr_acc=np.nan, fid_floor=np.nan)
    written(plots.fidelity_utility_figure(only_fid, util), tmp_path, "fid_only")
    assert plots.fidelity_utility_figure(None, util) is None


def test_gain_heatmap_marks_fragile_arrows_with_a_dagger_and_its_legend(tmp_path):
    """An arrow from fewer than 5 matched seeds carries the tables' dagger (†), and the figure
    says what it means; an arrow from 5 seeds and a non-significant gain carry none."""
    from medaug.analysis.stats import FRAGILE_MARK, Comparison, fragile_note
    from medaug.analysis.tables import Gain

    def comp(seeds: int, verdict: str, diff: float) -> Comparison:
        return Comparison(label="m", metric="acc", seeds=tuple(range(seeds)), mean_diff=diff, ci_low=diff - 0.01,
                          ci_high=diff + 0.01, p_value=0.01, test="t", p_holm=0.02, verdict=verdict)

    items = [Gain("breastmnist", "three seeds", comp(3, "improved", 0.031)),
             Gain("breastmnist", "five seeds", comp(5, "worse", -0.022)),
             Gain("breastmnist", "not significant", comp(3, "n.s.", 0.004))]
    fig = plots.gain_heatmap_figure(items)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert texts == {f"+3.1↑{FRAGILE_MARK}", "-2.2↓", "+0.4"}
    legend = fig.get_supxlabel().replace("\n", " ")
    assert legend == fragile_note() and plots.gain_heatmap_legend(items) == fragile_note()
    written(fig, tmp_path, "fragile_heatmap")
    solid = [items[1], items[2]]  # no dagger drawn: no legend line
    assert plots.gain_heatmap_legend(solid) == ""
    assert plots.gain_heatmap_figure(solid).get_supxlabel() == ""
