"""Seeds enough to claim anything (issue 13 item 6): an arrow from fewer than 5 matched seeds is
marked fragile, and every comparison states its minimum detectable effect (MDE), checked here
against scipy's noncentral t and shown in the tables, the legend and the report."""

from __future__ import annotations

import math

import numpy as np
import pytest
from analysis_rows import make_row, write_rows
from scipy import stats as sps

from medaug.analysis.load import load_results
from medaug.analysis.report import statistics_text
from medaug.analysis.stats import (FRAGILE_MARK, SOLID_SEEDS, StatsOptions, decide, detectable_gain,
                                   paired_compare, standardized_detectable)
from medaug.analysis.tables import Grid, table2, table5

GDA = "sharpness-contrast-flip"
BASE = [0.80, 0.82, 0.81, 0.79, 0.83]
SHIFT = [0.06, 0.05, 0.07, 0.06, 0.055]  # a clear, steady gain of WRS + GDA on every seed


def constructed_table2(tmp_path, n_seeds: int, shift=SHIFT):
    """BreastMNIST: baseline and WRS + GDA over `n_seeds` matched seeds (nothing else in the table)."""
    rows = []
    for s in range(n_seeds):
        rows.append(make_row(seed=s, acc=BASE[s]))
        rows.append(make_row(augmentation=GDA, wrs=True, seed=s, acc=BASE[s] + shift[s]))
    res = load_results(write_rows(tmp_path / f"out{n_seeds}", rows))
    return table2(Grid(res)), res


@pytest.mark.parametrize("n_seeds, fragile", [(3, True), (4, True), (5, False)])
def test_an_arrow_from_fewer_than_5_matched_seeds_is_marked_fragile(tmp_path, n_seeds, fragile):
    t, _ = constructed_table2(tmp_path, n_seeds)
    cell = t.cell("breastmnist", "WRS & GDA ACC")
    assert cell.mark == "up"  # significant with 3 seeds already: the per-seed gains barely vary
    assert cell.fragile is fragile
    body = t.to_markdown().split("\n- ")[0]
    assert (f"↑{FRAGILE_MARK}" in body) is fragile and "↑" in body
    assert (FRAGILE_MARK in t.to_csv()) is fragile and (FRAGILE_MARK in t.to_html().split("<ul")[0]) is fragile
    assert (r"$^{\uparrow}$$^{\dagger}$" in t.to_latex()) is fragile
    assert t.to_frame().set_index("column").loc["WRS & GDA ACC", "fragile"] == fragile
    # the legend line explains the mark, with or without a fragile cell
    assert any(n.startswith(f"{FRAGILE_MARK}: fragile") and f"fewer than {SOLID_SEEDS} matched seeds" in n
               for n in t.notes)
    assert ("fragile" in cell.detail) is fragile


def test_the_detectable_gain_is_in_the_cell_and_shrinks_with_the_spread(tmp_path):
    wide = [0.01, 0.09, 0.03, 0.08, 0.02]  # same mean gain (~0.046) as `steady`, five times the spread
    steady = [0.045, 0.047, 0.044, 0.048, 0.046]
    mdes = []
    for name, shift in (("wide", wide), ("steady", steady)):
        t, _ = constructed_table2(tmp_path / name, 5, shift)
        cell = t.cell("breastmnist", "WRS & GDA ACC")
        sd = np.std(np.array(shift), ddof=1)
        # one comparison in the family: level alpha / 1
        assert cell.detectable == pytest.approx(standardized_detectable(5, 0.05) * sd, rel=1e-9)
        assert f"[MDE {cell.detectable * 100:.2f}]" in t.to_markdown()
        assert "MDE" in cell.detail
        mdes.append(cell.detectable)
    assert mdes[1] < mdes[0] / 5  # less seed-to-seed spread: a smaller gain is detectable
    # and with fewer seeds the same spread detects less
    t3, _ = constructed_table2(tmp_path / "three", 3, wide)
    t5, _ = constructed_table2(tmp_path / "five", 5, wide)
    sd3, sd5 = np.std(wide[:3], ddof=1), np.std(wide, ddof=1)
    assert t3.cell("breastmnist", "WRS & GDA ACC").detectable / sd3 > \
        t5.cell("breastmnist", "WRS & GDA ACC").detectable / sd5 * 1.9


@pytest.mark.parametrize("n, level", [(3, 0.05), (5, 0.05), (5, 0.05 / 6), (10, 0.01), (30, 0.05)])
def test_the_detectable_gain_has_power_0_8_under_scipys_noncentral_t(n, level):
    """Independent check: at the MDE, scipy.stats.nct gives the paired t-test power 0.8."""
    sd = 0.013
    mde = detectable_gain(sd, n, level)
    df = n - 1
    critical = sps.t.ppf(1 - level / 2, df)
    noncentrality = mde / (sd / math.sqrt(n))
    assert sps.nct.sf(critical, df, noncentrality) == pytest.approx(0.8, abs=2e-4)
    # and a Monte Carlo of the test itself agrees: simulate n normal differences with mean MDE
    rng = np.random.default_rng(0)
    d = rng.normal(mde, sd, size=(40_000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    assert np.mean(t > critical) == pytest.approx(0.8, abs=0.01)


def test_holm_family_level_and_untestable_and_wilcoxon():
    opts = StatsOptions()
    base = dict(enumerate(BASE))
    comps = [paired_compare({s: v + SHIFT[s] * k for s, v in base.items()}, base, options=opts) for k in (1, 2, 3)]
    comps.append(paired_compare({0: 0.9}, {0: 0.8}, options=opts))  # one matched seed: untestable
    decided = decide(comps, opts.alpha)
    for c in decided[:3]:
        assert c.detect_level == pytest.approx(0.05 / 3)  # Holm's strictest step over the 3 testable
        assert c.detectable == pytest.approx(detectable_gain(c.sd_diff, 5, 0.05 / 3))
    assert decided[3].verdict == "untestable" and decided[3].detectable is None
    # the exact Wilcoxon test cannot reach p < 0.05 with 5 pairs: nothing is detectable
    assert math.isinf(standardized_detectable(5, 0.05, test="wilcoxon"))
    assert standardized_detectable(8, 0.05, test="wilcoxon") == pytest.approx(
        standardized_detectable(8, 0.05) / math.sqrt(3 / math.pi))


def test_table5_has_an_mde_column_and_the_report_legend_states_it(tmp_path):
    _, res = constructed_table2(tmp_path, 3)
    t = table5(Grid(res))
    mde = t.cell("breastmnist", "MDE (pp, power 0.8)").text
    sd = np.std(np.array(SHIFT[:3]), ddof=1)
    assert float(mde) == pytest.approx(standardized_detectable(3, 0.05) * sd * 100, abs=0.006)
    assert t.cell("breastmnist", "Verdict").plain() == "improved" and t.cell("breastmnist", "Verdict").fragile
    assert "| improved†" in t.to_markdown()
    assert any(n.startswith("MDE (") for n in t.notes)
    text = " ".join(statistics_text(StatsOptions()))
    assert "Fragile (†)" in text and "MDE (minimum detectable effect)" in text and "alpha/m" in text
    assert f"{standardized_detectable(3, 0.05):.2f} sd of the per-seed differences with 3 seeds" in text
