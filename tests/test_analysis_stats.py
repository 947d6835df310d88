"""Statistics across seeds: summaries, paired tests (scipy), Holm, bootstrap, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from medaug.analysis.stats import (StatsOptions, bootstrap_ci, decide, holm, paired_compare, paired_p_value,
                                   summarize)
from medaug.errors import MedaugError


def holm_reject_reference(p: list[float], alpha: float) -> list[bool]:
    """Holm's procedure as its sequential rejection rule (not the adjusted-p form the code uses)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    reject = [False] * len(p)
    m = len(p)
    for k, i in enumerate(order):
        if p[i] <= alpha / (m - k):
            reject[i] = True
        else:
            break
    return reject


def test_summarize_mean_sample_std_and_count():
    s = summarize([0.80, 0.82, 0.81])
    assert s.mean == pytest.approx(0.81, abs=1e-15)
    assert s.std == pytest.approx(np.std([0.80, 0.82, 0.81], ddof=1), abs=1e-15)
    assert s.n == 3
    one = summarize([0.7])
    assert one.mean == 0.7 and one.n == 1 and math.isnan(one.std)
    assert summarize([]).n == 0
    assert summarize([0.5, float("nan"), None]).n == 1


def test_paired_t_matches_scipy_on_matched_seeds_only():
    method = {0: 0.84, 1: 0.87, 2: 0.85, 7: 0.99}  # seed 7 has no baseline partner: ignored
    base = {0: 0.80, 1: 0.82, 2: 0.81, 9: 0.10}
    c = paired_compare(method, base)
    assert c.seeds == (0, 1, 2) and c.n == 3
    assert c.p_value == pytest.approx(sps.ttest_rel([0.84, 0.87, 0.85], [0.80, 0.82, 0.81]).pvalue, rel=1e-12)
    assert c.mean_diff == pytest.approx(np.mean([0.04, 0.05, 0.04]), abs=1e-12)


def test_paired_t_equals_scipy_ttest_rel_without_importing_it():
    """The t-test's p-value comes from Student's t CDF, not scipy.stats (slow to import);
    it equals ttest_rel on random pairs of 2 to 12 seeds and on a constant gain (t infinite)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 13))
        a = rng.random(n)
        b = a + rng.normal(0.01, 0.02, n)
        assert paired_p_value(a, b) == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-9, abs=1e-15)
    assert paired_p_value(np.array([0.9, 0.8]), np.array([0.8, 0.7])) == sps.ttest_rel([0.9, 0.8], [0.8, 0.7]).pvalue


def test_wilcoxon_matches_scipy():
    m = {s: 0.8 + 0.01 * s + (0.02 if s % 2 else -0.005) for s in range(8)}
    b = {s: 0.8 + 0.01 * s for s in range(8)}
    c = paired_compare(m, b, options=StatsOptions(test="wilcoxon"))
    assert c.p_value == pytest.approx(sps.wilcoxon([m[s] for s in range(8)], [b[s] for s in range(8)]).pvalue)
    assert c.test == "wilcoxon"


def test_holm_adjusted_values_and_decisions_match_reference():
    p = [0.01, 0.04, 0.03, 0.20, 0.005]
    adj = holm(p)
    # by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2 -> x5, x4, x3, x2, x1 then running max
    assert adj.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.20, 0.025])
    for alpha in (0.01, 0.05, 0.1):
        assert list(adj < alpha) == holm_reject_reference(p, alpha)


def test_decide_applies_holm_across_the_family():
    base = {0: 0.80, 1: 0.82, 2: 0.81}
    strong = paired_compare({0: 0.85, 1: 0.88, 2: 0.86}, base, label="strong")   # diffs .05 .06 .05
    weak = paired_compare({0: 0.82, 1: 0.86, 2: 0.84}, base, label="weak")       # diffs .02 .04 .03
    noise = paired_compare({0: 0.81, 1: 0.81, 2: 0.81}, base, label="noise")     # diffs .01 -.01 0
    raw = [strong.p_value, weak.p_value, noise.p_value]
    assert raw[1] < 0.05  # significant alone ...
    out = decide([strong, weak, noise], 0.05)
    expected = holm_reject_reference(raw, 0.05)
    assert [c.verdict == "improved" for c in out] == expected
    assert out[1].verdict == "n.s."  # ... but not after Holm over the three
    assert out[1].p_holm == pytest.approx(min(1, 2 * raw[1]))
    assert out[0].verdict == "improved"


def test_worse_is_reported_as_worse():
    base = {0: 0.85, 1: 0.88, 2: 0.86}
    c = decide([paired_compare({0: 0.80, 1: 0.82, 2: 0.81}, base)])[0]
    assert c.verdict == "worse" and c.mean_diff < 0


def test_single_seed_is_never_a_claim():
    c = paired_compare({0: 0.99}, {0: 0.50})
    assert c.n == 1 and c.p_value is None
    out = decide([c])
    assert out[0].verdict == "untestable" and "1 matched seed" in out[0].reason
    # also when it sits in a family with testable comparisons
    other = paired_compare({0: 0.9, 1: 0.91, 2: 0.92}, {0: 0.8, 1: 0.8, 2: 0.81})
    out = decide([c, other])
    assert out[0].verdict == "untestable" and out[1].verdict in ("improved", "n.s.")


def test_unmatched_seeds_and_missing_baseline_are_untestable_with_reason():
    c = decide([paired_compare({2: 0.9, 3: 0.91}, {0: 0.8, 1: 0.81})])[0]
    assert c.verdict == "untestable" and "no matched seeds" in c.reason
    c = decide([paired_compare({0: 0.9, 1: 0.91}, {})])[0]
    assert c.verdict == "untestable" and c.reason == "no baseline runs"


def test_identical_runs_are_not_significant():
    c = decide([paired_compare({0: 0.8, 1: 0.9}, {0: 0.8, 1: 0.9})])[0]
    assert c.p_value == 1.0 and c.verdict == "n.s."


def test_bootstrap_ci_fixed_seed_and_bounds():
    d = np.array([0.06, 0.08, 0.08, 0.02])
    a = bootstrap_ci(d, n_boot=2000, seed=0)
    assert a == bootstrap_ci(d, n_boot=2000, seed=0)
    assert d.min() <= a[0] <= d.mean() <= a[1] <= d.max()
    # the same numbers by hand: resample indices with the same generator
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, 4, size=(2000, 4))].mean(axis=1)
    assert a == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))


def test_options_are_validated():
    with pytest.raises(MedaugError, match="test"):
        StatsOptions(test="anova")
    with pytest.raises(MedaugError, match="alpha"):
        StatsOptions(alpha=1.5)
