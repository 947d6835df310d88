"""The seed-study tables on folders with known values: every cell, every decision, every rendering."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from analysis_rows import KNOWN_ACC, known_study, make_row, write_rows
from scipy import stats as sps

from medaug.analysis.load import load_results
from medaug.analysis.stats import holm
from medaug.analysis.tables import (Grid, build_tables, gains, impossible_comparisons, table2, table5,
                                    table_binary_rates, table_generators, table_per_class)

GDA = "sharpness-contrast-flip"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = known_study(tmp_path_factory.mktemp("study") / "out")
    return load_results(out)


def acc(aug, wrs, gen=None):
    return KNOWN_ACC[(aug, wrs, gen)]


def check(cell, values, scale=1.0):
    v = np.asarray(values, dtype=float) * scale
    assert cell.value.n == len(v)
    assert cell.value.mean == pytest.approx(v.mean(), abs=1e-12)
    assert cell.value.std == pytest.approx(v.std(ddof=1), abs=1e-12)


def test_table2_every_cell_exact(study):
    t = table2(Grid(study))
    configs = {"no GDA or WRS": ("none", False), "WRS, no GDA": ("none", True), "no WRS, GDA": (GDA, False),
               "WRS & GDA": (GDA, True)}
    assert t.header == [f"{h} {m}" for h in configs for m in ("ACC", "AUC")]
    for h, (aug, wrs) in configs.items():
        check(t.cell("breastmnist", f"{h} ACC"), acc(aug, wrs))
        check(t.cell("breastmnist", f"{h} AUC"), np.array(acc(aug, wrs)) + 0.05)
    assert t.cell("breastmnist", "no GDA or WRS ACC").plain() == "81.00 ± 1.00 (n=3)"
    # bold: the best mean per dataset and metric
    bold = [h for h in t.header if t.cell("breastmnist", h).bold]
    assert bold == ["WRS & GDA ACC", "WRS & GDA AUC"]


def test_table2_marks_match_scipy_with_holm(study):
    t = table2(Grid(study))
    base = acc("none", False)
    names = ["WRS, no GDA", "no WRS, GDA", "WRS & GDA"]
    keys = [("none", True), (GDA, False), (GDA, True)]
    p = [sps.ttest_rel(acc(*k), base).pvalue for k in keys]
    adj = holm(p)
    for name, k, a in zip(names, keys, adj):
        diff = np.mean(np.array(acc(*k)) - base)
        want = ("up" if diff > 0 else "down") if a < 0.05 else ""
        assert t.cell("breastmnist", f"{name} ACC").mark == want, name
    assert any("Holm-corrected over the 3 comparison(s)" in n for n in t.notes)


def test_table2_holm_removes_a_raw_significance(tmp_path):
    """GDA alone has p < 0.05, but not after Holm over the table's three comparisons: no arrow."""
    base, strong, weak, noise = [0.80, 0.82, 0.81], [0.85, 0.88, 0.86], [0.82, 0.86, 0.84], [0.81, 0.81, 0.81]
    rows = []
    for (aug, wrs), vals in {("none", False): base, ("none", True): strong, (GDA, False): weak,
                             (GDA, True): noise}.items():
        rows += [make_row(augmentation=aug, wrs=wrs, seed=s, acc=v) for s, v in enumerate(vals)]
    t = table2(Grid(load_results(write_rows(tmp_path / "out", rows))))
    p = [sps.ttest_rel(v, base).pvalue for v in (strong, weak, noise)]
    assert p[1] < 0.05 and holm(p)[1] >= 0.05 and holm(p)[0] < 0.05
    assert t.cell("breastmnist", "WRS, no GDA ACC").mark == "up"
    assert t.cell("breastmnist", "no WRS, GDA ACC").mark == ""
    assert t.cell("breastmnist", "WRS & GDA ACC").mark == ""
    assert "p=" in t.cell("breastmnist", "no WRS, GDA ACC").detail  # the numbers behind it are kept


def test_table3_cells_and_improved_columns_match_scipy(study):
    grid = Grid(study)
    t = table_generators(grid, wrs=False)
    assert t.header == ["Conditional VAE ACC", "Conditional VAE AUC", "Conditional GAN ACC", "Conditional GAN AUC",
                        "Improved over no GDA", "Improved over GDA"]
    check(t.cell("breastmnist", "Conditional VAE ACC"), acc("none", False, "cvae"))
    check(t.cell("breastmnist", "Conditional GAN AUC"), np.array(acc("none", False, "cgan")) + 0.05)
    # family: 2 generators x 2 baselines
    pairs = [("cvae", ("none", False)), ("cgan", ("none", False)), ("cvae", (GDA, False)), ("cgan", (GDA, False))]
    p = [sps.ttest_rel(acc("none", False, g), acc(*b)).pvalue for g, b in pairs]
    adj = holm(p)
    improved_nogda = [g for (g, b), a in zip(pairs, adj) if b[0] == "none" and a < 0.05]
    text, mde = t.cell("breastmnist", "Improved over no GDA").text.split("; [MDE ")  # the MDEs of its comparisons
    assert mde.endswith("]")
    if improved_nogda:
        assert text == "Yes: " + ", ".join({"cvae": "Conditional VAE", "cgan": "Conditional GAN"}[g]
                                            for g in improved_nogda)
    else:
        assert text == "No (n.s.)"
    assert "Holm-corrected over the 4 comparison(s)" in " ".join(t.notes)


def test_table4_with_wrs_generators(tmp_path):
    rows = [make_row(wrs=True, seed=s, acc=a) for s, a in enumerate([0.80, 0.81, 0.79, 0.80])]
    rows += [make_row(wrs=True, generator="cgan", seed=s, acc=a) for s, a in enumerate([0.90, 0.92, 0.91, 0.90])]
    res = load_results(write_rows(tmp_path / "out", rows))
    t = table_generators(Grid(res), wrs=True)
    check(t.cell("breastmnist", "Conditional GAN ACC"), [0.90, 0.92, 0.91, 0.90])
    p = sps.ttest_rel([0.90, 0.92, 0.91, 0.90], [0.80, 0.81, 0.79, 0.80]).pvalue
    assert p < 0.05
    # 4 matched seeds: the claim is fragile (dagger), with the comparison's minimum detectable effect
    mde = t.cell("breastmnist", "Conditional GAN ACC").detectable
    assert t.cell("breastmnist", "Improved over no GDA").text == f"Yes: Conditional GAN†; [MDE {mde * 100:.2f}]"
    assert t.cell("breastmnist", "Conditional GAN ACC").mark == "up"
    assert t.cell("breastmnist", "Improved over GDA").text == "—"
    assert any("no runs with geometric augmentation" in n for n in t.notes)
    assert table_generators(Grid(res), wrs=False).empty


def test_table5_best_gain_ci_and_p(study):
    t = table5(Grid(study))
    assert t.cell("breastmnist", "Best configuration").text == "WRS + geometric"
    check(t.cell("breastmnist", "ACC"), acc(GDA, True))
    assert t.cell("breastmnist", "ACC").bold
    d = np.array(acc(GDA, True)) - np.array(acc("none", False))
    assert t.cell("breastmnist", "ACC gain over no GDA/WRS (pp)").text == f"{d.mean() * 100:+.2f} (n=3 matched)"
    p = sps.ttest_rel(acc(GDA, True), acc("none", False)).pvalue  # a family of one dataset: Holm = raw
    assert t.cell("breastmnist", "p (Holm)").text == f"{p:.3g}"
    assert t.cell("breastmnist", "Verdict").text == ("improved" if p < 0.05 else "not significant")
    lo, hi = (float(x) for x in t.cell("breastmnist", "95% CI (pp)").text.strip("[]").split(","))
    assert d.min() * 100 - 1e-9 <= lo <= d.mean() * 100 <= hi <= d.max() * 100 + 1e-9


def test_single_seed_never_claims_improvement(tmp_path):
    rows = [make_row(seed=0, acc=0.50), make_row(augmentation=GDA, wrs=True, seed=0, acc=0.99),
            make_row(generator="cvae", seed=0, acc=0.98)]
    res = load_results(write_rows(tmp_path / "out", rows))
    grid = Grid(res)
    tables = build_tables(res)
    assert tables["table2"].cell("breastmnist", "WRS & GDA ACC").mark == ""
    assert tables["table2"].cell("breastmnist", "WRS & GDA ACC").plain() == "99.00 (n=1)"
    assert "untestable" in tables["table3"].cell("breastmnist", "Improved over no GDA").text
    assert tables["table5"].cell("breastmnist", "Verdict").text.startswith("untestable (1 matched seed")
    assert all(g.comparison.verdict == "untestable" for g in gains(grid))
    for t in tables.values():
        assert "↑" not in t.to_markdown().split("\n- ")[0]  # no arrow in any table body
    assert any("only 1 seed matched" in m for m in impossible_comparisons(grid))


def test_no_common_baseline_is_reported_not_raised(tmp_path):
    rows = [make_row("breastmnist", seed=s, acc=0.8 + s / 100) for s in range(2)]
    rows += [make_row("pneumoniamnist", wrs=True, seed=s, acc=0.9) for s in range(2)]  # no baseline there
    rows += [make_row("dermamnist", augmentation=GDA, seed=s + 5, acc=0.7) for s in range(2)]
    rows += [make_row("dermamnist", seed=s, acc=0.6) for s in range(2)]  # baseline, but other seeds
    res = load_results(write_rows(tmp_path / "out", rows))
    grid = Grid(res)
    tables = build_tables(res)
    msgs = impossible_comparisons(grid)
    assert any(m.startswith("pneumoniamnist: runs of WRS but no baseline run") for m in msgs)
    assert any("dermamnist: geometric shares no seed with the baseline" in m for m in msgs)
    t5 = tables["table5"]
    assert t5.cell("pneumoniamnist", "ACC gain over no GDA/WRS (pp)").text == "— (no baseline runs)"
    assert t5.cell("dermamnist", "Verdict").text.startswith("untestable (no matched seeds")
    assert any("pneumoniamnist: no baseline runs" in n for n in tables["table2"].notes)
    for t in tables.values():  # every form renders
        t.to_markdown(), t.to_latex(), t.to_csv(), t.to_html()


def test_binary_rates_from_confusion(study, tmp_path):
    t = table_binary_rates(Grid(study))
    row = "breastmnist · no GDA/WRS"
    # confusion per seed s: [[30+s, 12], [8, 106-s]]; positive class 1
    tp = np.array([106, 105, 104.0])
    tn = np.array([30, 31, 32.0])
    check(t.cell(row, "TPR"), tp / (tp + 8))
    check(t.cell(row, "TNR"), tn / (tn + 12))
    check(t.cell(row, "FPR"), 12 / (tn + 12))
    check(t.cell(row, "Accuracy"), (tp + tn) / 156)
    t0 = table_binary_rates(Grid(study), positive={"breastmnist": "malignant"})
    check(t0.cell(row, "TPR"), tn / (tn + 12))
    assert any("positive class = 'malignant' (index 0)" in n for n in t0.notes)
    from medaug.errors import MedaugError

    with pytest.raises(MedaugError, match="not a class name"):
        table_binary_rates(Grid(study), positive={"breastmnist": "cat"})


def test_per_class_table_exact_and_marked(tmp_path):
    base_f1 = [[0.10, 0.80], [0.12, 0.82], [0.11, 0.81]]
    aug_f1 = [[0.40, 0.80], [0.45, 0.79], [0.42, 0.83]]
    rows = [make_row(seed=s, f1=base_f1[s], precision=[0.2, 0.9], recall=[0.1, 0.95]) for s in range(3)]
    rows += [make_row(generator="cwgan-gp", seed=s, f1=aug_f1[s], precision=[0.3, 0.85], recall=[0.5, 0.9])
             for s in range(3)]
    res = load_results(write_rows(tmp_path / "out", rows))
    t = table_per_class(Grid(res), "breastmnist")
    assert [r for r, _ in t.rows] == ["malignant", "normal, benign"]
    check(t.cell("malignant", "no GDA/WRS F1"), [r[0] for r in base_f1])
    check(t.cell("malignant", "cWGAN-GP F1"), [r[0] for r in aug_f1])
    check(t.cell("normal, benign", "cWGAN-GP R"), [0.9, 0.9, 0.9])
    p = [sps.ttest_rel([r[k] for r in aug_f1], [r[k] for r in base_f1]).pvalue for k in (0, 1)]
    adj = holm(p)
    assert adj[0] < 0.05 <= adj[1]
    assert t.cell("malignant", "cWGAN-GP F1").mark == "up"
    assert t.cell("normal, benign", "cWGAN-GP F1").mark == ""
    assert t.cell("malignant", "cWGAN-GP F1").bold and not t.cell("malignant", "no GDA/WRS F1").bold


def test_renderings(study):
    t = table2(Grid(study))
    md = t.to_markdown()
    assert "| Dataset | no GDA or WRS ACC |" in md and "**88.33 ± 2.08 (n=3)" in md
    tex = t.to_latex()
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\textbf{88.33 $\pm$ 2.08 (n=3)", r"WRS \& GDA ACC"):
        assert token in tex
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert rows[0][0] == "Dataset" and len(rows) == 2 and rows[1][1] == "81.00 ± 1.00 (n=3)"
    long = t.to_frame()
    cell = long[(long["row"] == "breastmnist") & (long["column"] == "WRS & GDA ACC")].iloc[0]
    assert cell["n"] == 3 and cell["bold"] and cell["mean"] == pytest.approx(np.mean(acc(GDA, True)))
    html = t.to_html()
    assert "<strong>88.33 ± 2.08 (n=3)" in html and "<caption>" in html


def test_rows_are_grouped_and_labelled_by_recipe(tmp_path):
    """Two recipes on one data set are two contexts named by the recipe, not by the dozen
    fields that differ between them; each is compared with its own baseline."""
    rows = []
    for recipe, base, geometric in (("seed000", [0.80, 0.81, 0.79], [0.85, 0.86, 0.84]),
                                    ("fast", [0.90, 0.91, 0.92], [0.90, 0.91, 0.92])):
        for seed in range(3):
            rows.append(make_row(recipe=recipe, seed=seed, acc=base[seed]))
            rows.append(make_row(recipe=recipe, seed=seed, acc=geometric[seed], augmentation=GDA))
    res = load_results(write_rows(tmp_path / "out", rows))
    assert sorted(res.rows["context"].unique()) == ["breastmnist · fast", "breastmnist · seed000"]
    t = table2(Grid(res))
    check(t.cell("breastmnist · seed000", "no GDA or WRS ACC"), [0.80, 0.81, 0.79])
    check(t.cell("breastmnist · fast", "no WRS, GDA ACC"), [0.90, 0.91, 0.92])
    # a field varying within one recipe is still named
    rows.append(make_row(recipe="fast", seed=0, acc=0.9, tta="flip-shift"))
    res = load_results(write_rows(tmp_path / "out2", rows))
    assert "breastmnist · fast · TTA flip-shift" in set(res.rows["context"])
    assert "breastmnist · seed000 · TTA none" in set(res.rows["context"])
