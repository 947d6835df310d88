"""Statistics across seeds: summaries, paired tests over matched seeds, Holm correction.

Seed 000 reports one run per cell and calls a method better when its number is
higher. Here a cell is the mean +- sample standard deviation (ddof = 1) over seeds,
and a method "improved" over its baseline only when

1. the two were run with at least two **matched** seeds (the same seed values:
   same initialisation and data order, so the pairs share their noise),
2. a paired test on the per-seed differences (paired t-test by default, or
   Wilcoxon signed-rank) is significant at `alpha` **after Holm's correction**
   across the family of comparisons of one table, and
3. the mean difference is positive.

A bootstrap confidence interval of the mean difference (percentile, fixed seed)
is reported beside, so a reader sees the size of the effect, not just a verdict.
One seed never supports a claim: such a comparison is "untestable".

Note: with n <= 5 seeds the exact two-sided Wilcoxon test cannot reach p < 0.05;
use the t-test (the default) for small seed counts.

Seeds enough to claim anything: a verdict ("improved" / "worse") that rests on fewer than
`SOLID_SEEDS` (5) matched seeds is `fragile` (the tables mark it with a dagger), and every
tested comparison carries its minimum detectable effect (`detectable`): the smallest true
mean difference that its own test would call significant with probability `POWER` (0.8),
given the observed standard deviation of its per-seed differences and its n. It is computed
at the level alpha / m of a family of m comparisons, Holm's strictest step: a raw p below
alpha / m is rejected by Holm whatever the other p-values, so the figure holds for every
comparison of the family. A "not significant" whose mean gain lies below it says that the
seeds were too few to see such a gain, not that there is none.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

TESTS = ("t", "wilcoxon")
VERDICTS = ("improved", "worse", "n.s.", "untestable")
SOLID_SEEDS = 5  # fewer matched seeds than this: a verdict is marked fragile
POWER = 0.8  # the power at which `detectable` is stated
FRAGILE_MARK = "†"


@dataclass(frozen=True)
class StatsOptions:
    """How comparisons are tested; the defaults are what the report uses."""

    test: str = "t"  # "t": paired t-test (as scipy.stats.ttest_rel); "wilcoxon": scipy.stats.wilcoxon
    alpha: float = 0.05
    n_boot: int = 10_000
    boot_seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        from medaug.errors import MedaugError

        if self.test not in TESTS:
            raise MedaugError(f"statistics: test {self.test!r} is unknown; expected one of {TESTS}")
        if not 0 < self.alpha < 1:
            raise MedaugError(f"statistics: alpha {self.alpha} must lie in (0, 1)")
        if self.n_boot < 100:
            raise MedaugError(f"statistics: n_boot {self.n_boot} must be >= 100")


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof = 1; NaN for one value) and count of a cell."""

    mean: float
    std: float
    n: int


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    arr = np.asarray([v for v in values if v is not None and not _isnan(v)], dtype=float)
    if arr.size == 0:
        return Summary(math.nan, math.nan, 0)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan
    return Summary(float(np.mean(arr)), std, int(arr.size))


def _isnan(v: object) -> bool:
    try:
        return math.isnan(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


@dataclass(frozen=True)
class Comparison:
    """One method against its baseline on one metric, over matched seeds.

    `p_value` is the raw test's (None when untestable); `p_holm` is filled by
    `decide` with the Holm-adjusted value within the comparison's family.
    """

    label: str
    metric: str
    seeds: tuple[int, ...]
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float | None
    test: str
    reason: str = ""  # why untestable
    confidence: float = 0.95
    p_holm: float | None = None
    verdict: str = "untestable"
    sd_diff: float = math.nan  # sample sd (ddof = 1) of the per-seed differences
    detectable: float | None = None  # minimum detectable |mean difference| at POWER (filled by `decide`)
    detect_level: float | None = None  # the test level `detectable` is computed at (alpha / family size)

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def fragile(self) -> bool:
        """A verdict of significance resting on fewer than `SOLID_SEEDS` matched seeds."""
        return self.verdict in ("improved", "worse") and self.n < SOLID_SEEDS

    def describe(self, scale: float = 100.0, unit: str = "pp") -> str:
        """One line: the verdict with its numbers (differences scaled, e.g. to percentage points)."""
        if self.verdict == "untestable":
            return f"untestable ({self.reason})"
        ci = f"[{self.ci_low * scale:+.2f}, {self.ci_high * scale:+.2f}]"
        text = (f"{self.verdict}: {self.mean_diff * scale:+.2f} {unit}, {self.confidence * 100:g}% CI {ci}, "
                f"p={self.p_value:.3g}, Holm p={self.p_holm:.3g}, n={self.n}")
        if self.detectable is not None:
            text += f", MDE {format_detectable(self.detectable, scale)} {unit} (power {POWER:g})"
        if self.fragile:
            text += f" {FRAGILE_MARK} fragile: {self.n} < {SOLID_SEEDS} matched seeds"
        return text


def paired_compare(method: Mapping[int, float], baseline: Mapping[int, float], *, label: str = "",
                   metric: str = "acc", options: StatsOptions | None = None) -> Comparison:
    """Compare per-seed values of a method with its baseline over the seeds both have."""
    opts = options or StatsOptions()
    m = {int(s): float(v) for s, v in method.items() if not _isnan(v)}
    b = {int(s): float(v) for s, v in baseline.items() if not _isnan(v)}
    seeds = tuple(sorted(set(m) & set(b)))
    nan = math.nan
    if not seeds:
        reason = "no baseline runs" if not b else ("no runs" if not m else
                                                   f"no matched seeds (method {sorted(m)}, baseline {sorted(b)})")
        return Comparison(label, metric, seeds, nan, nan, nan, None, opts.test, reason, opts.confidence)
    d = np.array([m[s] - b[s] for s in seeds])
    mean_diff = float(d.mean())
    if len(seeds) < 2:
        return Comparison(label, metric, seeds, mean_diff, nan, nan, None, opts.test,
                          f"{len(seeds)} matched seed; at least 2 are needed", opts.confidence)
    lo, hi = bootstrap_ci(d, n_boot=opts.n_boot, seed=opts.boot_seed, confidence=opts.confidence)
    p = paired_p_value(np.array([m[s] for s in seeds]), np.array([b[s] for s in seeds]), opts.test)
    return Comparison(label, metric, seeds, mean_diff, lo, hi, p, opts.test, "", opts.confidence,
                      sd_diff=float(d.std(ddof=1)))


def paired_p_value(a: np.ndarray, b: np.ndarray, test: str = "t") -> float:
    """Two-sided p-value of a paired test; identical samples give p = 1.

    The t-test is computed here from Student's t CDF (`scipy.special.stdtr`, equal to
    `scipy.stats.ttest_rel`): importing scipy.stats alone costs ~0.8 s of every table
    command's start-up. The Wilcoxon signed-rank test is scipy.stats.wilcoxon's.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if np.all(d == 0):
        return 1.0
    if test == "t":
        from scipy.special import stdtr

        sd = d.std(ddof=1)
        if sd == 0:  # every seed gains exactly the same: t is infinite
            return 0.0
        t = d.mean() / (sd / math.sqrt(len(d)))
        p = 2.0 * stdtr(len(d) - 1, -abs(t))
    else:
        from scipy import stats as sps

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = sps.wilcoxon(a, b).pvalue
    p = float(p)
    return 1.0 if math.isnan(p) else p


def bootstrap_ci(d: np.ndarray, *, n_boot: int = 10_000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `d` (resampling seeds with replacement, fixed RNG seed)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    means = d[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) for the ascending p_(1..m).
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adj_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj_sorted
    return out


def decide(comparisons: Sequence[Comparison], alpha: float = 0.05) -> list[Comparison]:
    """Holm-adjust the testable comparisons as one family and give each its verdict.

    Each testable comparison also gets its minimum detectable effect at the level
    alpha / m (m: the family's testable comparisons; see the module docstring).
    """
    testable = [i for i, c in enumerate(comparisons) if c.p_value is not None and c.n >= 2]
    adjusted = holm([comparisons[i].p_value for i in testable])  # type: ignore[misc]
    level = alpha / max(len(testable), 1)
    out = list(comparisons)
    for i, p_adj in zip(testable, adjusted):
        c = comparisons[i]
        if p_adj < alpha and c.mean_diff > 0:
            verdict = "improved"
        elif p_adj < alpha and c.mean_diff < 0:
            verdict = "worse"
        else:
            verdict = "n.s."
        mde = detectable_gain(c.sd_diff, c.n, level, test=c.test) if not math.isnan(c.sd_diff) else None
        out[i] = replace(c, p_holm=float(p_adj), verdict=verdict, detectable=mde, detect_level=level)
    for i, c in enumerate(out):
        if i not in testable:
            out[i] = replace(c, p_holm=None, verdict="untestable", detectable=None, detect_level=None)
    return out


# ---------------------------------------------------------------------------------------------
# power: the smallest gain a comparison could have detected

def t_power(noncentrality: float, df: int, critical: float, nodes: int = 4000) -> float:
    """P(T > critical) for T noncentral t with `df` degrees of freedom and this noncentrality.

    T = (Z + lam) / S with Z standard normal and S = sqrt(V / df), V chi-square(df), so
    P(T > c) = E_S[Phi(lam - c S)]. The expectation is a midpoint rule over `nodes`
    quantiles of V (`gammaincinv`), accurate to ~1e-5 and free of the special cases
    of a noncentral t CDF. Only the upper tail counts: a paired test calls a gain
    "improved" only when the mean difference is positive.
    """
    from scipy.special import ndtr

    return float(np.mean(ndtr(noncentrality - critical * _scaled_chi_nodes(int(df), int(nodes)))))


@lru_cache(maxsize=64)
def _scaled_chi_nodes(df: int, nodes: int) -> np.ndarray:
    """sqrt(V / df) at the midpoint quantiles of V ~ chi-square(df)."""
    from scipy.special import gammaincinv

    u = (np.arange(nodes) + 0.5) / nodes
    return np.sqrt(2.0 * gammaincinv(df / 2.0, u) / df)


@lru_cache(maxsize=512)
def standardized_detectable(n: int, level: float, power: float = POWER, test: str = "t") -> float:
    """The minimum detectable mean difference in units of the sd of the per-seed differences.

    Paired t-test, two-sided at `level`, n matched seeds: the smallest delta with
    P(T_{n-1}(delta sqrt(n)) > t_{1 - level/2, n-1}) >= power, found by bisection.
    Wilcoxon signed-rank (exact, two-sided): infinite when n pairs cannot reach p < level
    (its smallest p is 2 / 2^n); otherwise the t-test's figure divided by sqrt(3 / pi),
    the test's efficiency relative to the t-test for normal differences (an approximation).
    """
    from scipy.special import stdtrit

    if n < 2:
        return math.inf
    if test == "wilcoxon":
        if 2.0 / 2.0 ** n > level:
            return math.inf
        return standardized_detectable(n, level, power, "t") / math.sqrt(3.0 / math.pi)
    df = n - 1
    critical = float(stdtrit(df, 1.0 - level / 2.0))
    lo, hi = 0.0, 1.0
    while t_power(hi, df, critical) < power:
        hi *= 2.0
    for _ in range(50):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_power(mid, df, critical) < power else (lo, mid)
    return hi / math.sqrt(n)


def detectable_gain(sd_diff: float, n: int, level: float, power: float = POWER, test: str = "t") -> float:
    """The smallest true mean difference that a paired test over n seeds with this spread detects.

    `sd_diff` is the sample sd of the per-seed differences (the observed seed-to-seed
    spread); the result is in the same units (infinite when n seeds cannot reach `level`).
    """
    return standardized_detectable(int(n), float(level), float(power), test) * float(sd_diff)


def format_detectable(value: float, scale: float = 100.0) -> str:
    return "∞" if math.isinf(value) else f"{value * scale:.2f}"


def power_text(opts: StatsOptions) -> list[str]:
    """The report's statistics legend on seed counts and detectable effects."""
    how = ("from the noncentral t distribution" if opts.test == "t" else
           "as the t-test's figure divided by sqrt(3/pi), the Wilcoxon test's efficiency for normal differences "
           "(an approximation), infinite where the exact test cannot reach the level with n seeds")
    return [
        f"Fragile ({FRAGILE_MARK}): an arrow or verdict resting on fewer than {SOLID_SEEDS} matched seeds. With 3 "
        "seeds a paired t-test has 2 degrees of freedom; a gain whose per-seed differences barely vary comes out "
        "significant, and one seed more or less can turn the verdict.",
        f"MDE (minimum detectable effect): for each tested comparison, the smallest true mean gain that its "
        f"{'paired t-test' if opts.test == 't' else 'Wilcoxon signed-rank test'} would call significant with "
        f"power {POWER:g}, given the sample standard deviation of its per-seed differences and its number n of "
        f"matched seeds, computed {how}. The level is alpha/m (m: the comparisons of the family), the first and "
        "strictest step of Holm's procedure, so a gain of the MDE is detected by Holm whatever the other p-values. "
        "A non-significant gain below its MDE means the seeds were too few (or too spread) to see it, not that "
        f"there is no effect. The MDE uses the observed spread, itself uncertain with few seeds. Example: alpha "
        f"0.05, one comparison: {standardized_detectable(3, 0.05):.2f} sd of the per-seed differences with 3 "
        f"seeds, {standardized_detectable(5, 0.05):.2f} sd with 5, {standardized_detectable(10, 0.05):.2f} with 10.",
    ]


def fragile_note() -> str:
    """The legend line of the fragile mark."""
    return (f"{FRAGILE_MARK}: fragile, the verdict rests on fewer than {SOLID_SEEDS} matched seeds (one seed more "
            "or less can turn it); run more seeds before claiming it.")


def detectable_note(opts: StatsOptions, n_family: int, unit: str = "pp") -> str:
    """The legend line of the minimum detectable effect of a table's comparisons."""
    level = opts.alpha / max(n_family, 1)
    how = ("noncentral t" if opts.test == "t" else
           "the t-test's figure / sqrt(3/pi), infinite where the exact Wilcoxon test cannot reach the level")
    return (f"MDE ('[MDE x]' after a compared cell, or its own column): minimum detectable effect, the smallest true mean gain ({unit}) that this comparison's test "
            f"would call significant with power {POWER:g}, from the sd of its per-seed differences and its n "
            f"matched seeds ({how}), at alpha/m = {opts.alpha:g}/{max(n_family, 1)} = {level:.3g} (Holm's strictest "
            "step, so Holm detects it too). A 'not significant' gain below its MDE means too few seeds (or too "
            "much seed-to-seed spread), not no effect.")


MIN_RANK_POINTS = 3


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rho of two paired samples with a percentile-bootstrap CI (resampling pairs).

    `rho`, `lo` and `hi` are NaN when there are fewer than `MIN_RANK_POINTS` points or one
    side is constant; `text` then says why instead of giving a number.
    """

    n: int
    rho: float
    lo: float
    hi: float
    n_boot: int
    seed: int
    confidence: float

    @property
    def short(self) -> str:
        """Two lines for a figure panel."""
        if self.n < MIN_RANK_POINTS:
            return f"n = {self.n}: too few points\nfor a rank correlation"
        if math.isnan(self.rho):
            return f"Spearman ρ undefined\n(n = {self.n}, a constant variable)"
        return f"Spearman ρ = {self.rho:+.2f}\n{self.confidence * 100:g}% CI [{self.lo:+.2f}, {self.hi:+.2f}], n = {self.n}"

    @property
    def text(self) -> str:
        """One sentence for the report text."""
        if self.n < MIN_RANK_POINTS:
            return f"Spearman rho: {self.n} point(s), too few for a rank correlation (need >= {MIN_RANK_POINTS})"
        if math.isnan(self.rho):
            return f"Spearman rho: undefined (n = {self.n}, one variable is constant)"
        return (f"Spearman rho = {self.rho:+.2f}, {self.confidence * 100:g}% CI [{self.lo:+.2f}, {self.hi:+.2f}] "
                f"(n = {self.n}; percentile bootstrap, {self.n_boot} resamples, seed {self.seed})")


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of (B, n) arrays: Pearson's r of average ranks (ties share one)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def rank_correlation(x: Sequence[float], y: Sequence[float], *, n_boot: int = 10_000, seed: int = 0,
                     confidence: float = 0.95) -> RankCorrelation:
    """Spearman's rho of the finite (x, y) pairs and its percentile-bootstrap CI.

    The bootstrap resamples the pairs with replacement (fixed RNG seed: the same points give
    the same interval); resamples in which a side is constant have no rho and are left out.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = len(xa)
    nan = math.nan
    if n < MIN_RANK_POINTS:
        return RankCorrelation(n, nan, nan, nan, n_boot, seed, confidence)
    rho = float(_spearman_rows(xa[None, :], ya[None, :])[0])
    if math.isnan(rho):
        return RankCorrelation(n, nan, nan, nan, n_boot, seed, confidence)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = _spearman_rows(xa[idx], ya[idx])
    boot = boot[np.isfinite(boot)]
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(boot, [tail, 100 - tail]) if len(boot) else (nan, nan)
    return RankCorrelation(n, rho, float(lo), float(hi), n_boot, seed, confidence)
