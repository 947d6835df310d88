"""The seed studies' tables, rebuilt from result rows with statistics across seeds.

Forms (seed file in brackets):
- `table2` [000, Table 2]: per dataset, ACC and AUC for no GDA/WRS, WRS only,
  geometric only, WRS + geometric.
- `table3` / `table4` [000, Tables 3-4]: per dataset, ACC and AUC per generator
  without / with WRS, and whether any generator improved over no GDA / over GDA.
- `table5` [000, Table 5]: the best configuration per dataset and its ACC gain over
  the no-GDA/WRS baseline.
- `binary_rates` [003, "Results"]: accuracy, TPR, TNR, FPR per classifier x
  augmentation for binary tasks, from the test confusion matrices.
- `per_class_<context>` [002, Tables 2-3]: per-class precision / recall / F1 before
  (baseline) and after augmentation.
- `generator_confidence` [001, Table 2] and `generator_fidelity`: from generator-evaluation
  rows (`medaug.analysis.generator_tables`; a generator study's folder has only these).

Every number cell is mean +- std over seeds with the seed count; the best mean per
dataset is bold. Claims ("improved", arrows) follow `medaug.analysis.stats`: paired
comparisons over matched seeds, Holm-corrected within each table, never from one
seed. What cannot be compared (no baseline run in a context, no matched seeds, two
geometric pipelines where one is needed) is said in the table's notes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medaug.analysis.load import Results
from medaug.analysis.methods import BASELINE_LABEL, contexts, methods_in, slug
from medaug.analysis.render import Cell, Table
from medaug.analysis.stats import (FRAGILE_MARK, POWER, Comparison, StatsOptions, Summary, decide, detectable_note,
                                   format_detectable, fragile_note, paired_compare, summarize)

METRIC_COLUMNS = {"acc": "test_acc", "auc": "test_auc"}
METRIC_NAMES = {"acc": "ACC", "auc": "AUC"}

TABLE2_HEADERS = {(False, False): "no GDA or WRS", (True, False): "WRS, no GDA", (False, True): "no WRS, GDA",
                  (True, True): "WRS & GDA"}


class Grid:
    """Finished runs indexed by (context, method) with one value per seed.

    Two runs of the same (context, method, seed) — e.g. two synthetic sets from one
    generator — are averaged into that seed's value, and noted.
    """

    def __init__(self, results: Results | pd.DataFrame):
        df = results.finished if isinstance(results, Results) else results[results["status"] == "finished"]
        self.df = df.reset_index(drop=True)
        self.contexts = contexts(self.df)
        self.methods = methods_in(self.df)
        self.notes: list[str] = []
        self._groups = {key: g for key, g in self.df.groupby(["context", "method"], sort=False)} if len(df) else {}
        for (ctx, method), g in self._groups.items():
            dup = g["seed"].duplicated().sum()
            if dup:
                self.notes.append(f"{ctx}: {method}: {dup} run(s) repeat a seed; their values are averaged per seed")

    def rows(self, ctx: str, method: str) -> pd.DataFrame:
        return self._groups.get((ctx, method), self.df.iloc[0:0])

    def has(self, ctx: str, method: str) -> bool:
        return (ctx, method) in self._groups

    def methods_of(self, ctx: str) -> list[str]:
        return [m for m in self.methods if self.has(ctx, m)]

    def seeds(self, ctx: str, method: str, column: str) -> dict[int, float]:
        g = self.rows(ctx, method)
        if g.empty:
            return {}
        vals = pd.to_numeric(g[column], errors="coerce")
        s = vals.groupby(g["seed"].astype(int)).mean().dropna()
        return {int(k): float(v) for k, v in s.items()}

    def summary(self, ctx: str, method: str, column: str) -> Summary:
        return summarize(list(self.seeds(ctx, method, column).values()))

    def method_where(self, augmentation: str, wrs: bool, generator_isna: bool = True) -> str | None:
        """The label of the (augmentation, wrs, no synthetic) method, if any run used it."""
        sel = self.df[(self.df["augmentation"] == augmentation) & (self.df["wrs"] == wrs)
                      & (self.df["generator"].isna() == generator_isna)]
        return None if sel.empty else str(sel["method"].iloc[0])

    def geometric_augmentations(self) -> list[str]:
        return sorted(set(self.df.loc[self.df["generator"].isna() & self.df["geometric"], "augmentation"]))


# ---------------------------------------------------------------------------------------------
# helpers

def _bold_best(cells: Sequence[Cell], lower_is_better: bool = False) -> None:
    vals = [c.value.mean if c.value is not None and c.value.n > 0 else math.nan for c in cells]
    finite = [v for v in vals if not math.isnan(v)]
    if len(finite) < 2:  # nothing to be best among
        return
    best = min(finite) if lower_is_better else max(finite)
    for c, v in zip(cells, vals):
        if not math.isnan(v) and v == best:
            c.bold = True


def _mark(cell: Cell, comp: Comparison) -> None:
    cell.mark = {"improved": "up", "worse": "down"}.get(comp.verdict, "")
    cell.detail = comp.describe()
    cell.fragile = comp.fragile
    cell.detectable = comp.detectable


def _legend(opts: StatsOptions, n_family: int, baseline: str, what: str = "test ACC") -> str:
    test = "paired t-test" if opts.test == "t" else "Wilcoxon signed-rank test"
    return (f"↑/↓: {what} significantly better/worse than {baseline} ({test} over matched seeds, Holm-corrected "
            f"over the {n_family} comparison(s) of this table, alpha {opts.alpha:g}); no arrow: not significant or "
            "untestable. Claims need at least 2 matched seeds.")


def _power_notes(opts: StatsOptions, n_family: int) -> list[str]:
    """The legend lines of the fragile mark and of the minimum detectable effect."""
    return [fragile_note(), detectable_note(opts, n_family)] if n_family else []


CELL_LEGEND = "Cells: mean ± std over seeds (n = number of seeds), in %. Bold: best mean per dataset."


def _untestable_notes(items: Sequence[tuple[str, str, Comparison]]) -> list[str]:
    seen, notes = set(), []
    for ctx, method, comp in items:
        if comp.verdict == "untestable" and (ctx, method) not in seen:
            seen.add((ctx, method))
            notes.append(f"{ctx}: {method} vs baseline cannot be tested: {comp.reason}")
    return notes


def _no_baseline_note(ctx: str, baseline: str) -> str:
    return (f"{ctx}: no baseline runs ({baseline}) in this context: its comparisons are impossible "
            "(runs of other datasets or settings are never used as a baseline)")


# ---------------------------------------------------------------------------------------------
# seed 000 Table 2

def table2(grid: Grid, opts: StatsOptions | None = None) -> Table:
    """Seed 000 Table 2 form: ACC/AUC for {none, WRS} x {no geometric, geometric}, real data only."""
    opts = opts or StatsOptions()
    geos = grid.geometric_augmentations()
    configs: list[tuple[str, str]] = []  # (header, method label)
    for aug in ["none", *geos]:
        for wrs in (False, True):
            method = grid.method_where(aug, wrs)
            if method is None:
                continue
            header = TABLE2_HEADERS[(wrs, aug != "none")] + (f" [{aug}]" if len(geos) > 1 and aug != "none" else "")
            configs.append((header, method))
    header = [f"{h} {METRIC_NAMES[m]}" for h, _ in configs for m in ("acc", "auc")]
    table = Table("table2", "Test ACC and AUC with geometric data augmentation (GDA) and weighted random sampling "
                  "(WRS) (seed 000 Table 2 form)", "Dataset", header)
    ctxs = [c for c in grid.contexts if any(grid.has(c, m) for _, m in configs)]
    if not ctxs:
        table.notes.append("no runs without a synthetic set in these results: nothing to show in Table 2 form")
        return table
    comparisons: list[tuple[str, str, Comparison]] = []
    cell_of: dict[tuple[str, str], Cell] = {}
    notes: list[str] = []
    for ctx in ctxs:
        cells: list[Cell] = []
        for _, method in configs:
            for metric in ("acc", "auc"):
                cells.append(Cell(grid.summary(ctx, method, METRIC_COLUMNS[metric])))
            cell_of[(ctx, method)] = cells[-2]
        for metric_offset in (0, 1):
            _bold_best(cells[metric_offset::2])
        table.rows.append((ctx, cells))
        if not grid.has(ctx, BASELINE_LABEL):
            notes.append(_no_baseline_note(ctx, "no GDA, no WRS, no synthetic set"))
            continue
        base = grid.seeds(ctx, BASELINE_LABEL, "test_acc")
        for _, method in configs:
            if method != BASELINE_LABEL and grid.has(ctx, method):
                comp = paired_compare(grid.seeds(ctx, method, "test_acc"), base, label=f"{ctx}: {method}",
                                      metric="acc", options=opts)
                comparisons.append((ctx, method, comp))
    decided = decide([c for _, _, c in comparisons], opts.alpha)
    comparisons = [(ctx, m, c) for (ctx, m, _), c in zip(comparisons, decided)]
    for ctx, method, comp in comparisons:
        _mark(cell_of[(ctx, method)], comp)
    n_tested = sum(c.verdict != "untestable" for *_, c in comparisons)
    table.notes = [CELL_LEGEND, _legend(opts, n_tested, "no GDA or WRS"), *_power_notes(opts, n_tested)]
    if geos:
        table.notes.append("GDA = " + ", ".join(geos))
    table.notes += notes + _untestable_notes(comparisons) + grid.notes
    return table


# ---------------------------------------------------------------------------------------------
# seed 000 Tables 3 and 4

def table_generators(grid: Grid, wrs: bool, opts: StatsOptions | None = None, geometric: str | None = None) -> Table:
    """Seed 000 Table 3 (wrs=False) / Table 4 (wrs=True) form: ACC/AUC per generator, improved over no GDA / GDA.

    Both baselines use the table's WRS setting: "no GDA" is (no geometric, no synthetic),
    "GDA" is (geometric `geometric`, no synthetic). The "Improved" columns name the
    generators whose test ACC is significantly higher (paired test, Holm over all the
    table's comparisons); arrows on ACC cells are against "no GDA".
    """
    opts = opts or StatsOptions()
    key, number = ("table4", 4) if wrs else ("table3", 3)
    syn = grid.df[grid.df["generator"].notna() & (grid.df["wrs"] == wrs)]
    gen_methods = [m for m in grid.methods if m in set(syn["method"])]
    strip = "WRS + " if wrs else ""
    short = {m: m[len(strip):] if m.startswith(strip) else m for m in gen_methods}
    header = [f"{short[m]} {METRIC_NAMES[x]}" for m in gen_methods for x in ("acc", "auc")]
    header += ["Improved over no GDA", "Improved over GDA"]
    title = (f"Test ACC and AUC with deep-learning data augmentation{' with WRS' if wrs else ''} "
             f"(seed 000 Table {number} form)")
    table = Table(key, title, "Dataset", header)
    if not gen_methods:
        table.notes.append(f"no runs with a synthetic set {'with' if wrs else 'without'} WRS in these results: "
                           f"nothing to show in Table {number} form")
        return table

    nogda = grid.method_where("none", wrs)
    geos = grid.geometric_augmentations()
    notes: list[str] = []
    gda: str | None = None
    if geometric is not None:
        gda = grid.method_where(geometric, wrs)
        if gda is None:
            notes.append(f"'over GDA' impossible: no runs with geometric augmentation {geometric!r} "
                         f"{'with' if wrs else 'without'} WRS")
    elif len(geos) == 1:
        gda = grid.method_where(geos[0], wrs)
    elif len(geos) > 1:
        notes.append(f"'over GDA' impossible: several geometric pipelines ({', '.join(geos)}); "
                     "name one (tables: geometric=NAME; CLI: --geometric NAME)")
    if gda is None and not geos:
        notes.append("'over GDA' impossible: no runs with geometric augmentation in these results")
    elif gda is None and len(geos) == 1:
        notes.append(f"'over GDA' impossible: no runs with {geos[0]} {'with' if wrs else 'without'} WRS")
    if nogda is None:
        notes.append(f"'over no GDA' impossible: no runs without geometric augmentation and without synthetic data "
                     f"{'with' if wrs else 'without'} WRS")

    ctxs = [c for c in grid.contexts if any(grid.has(c, m) for m in gen_methods)]
    comps: list[tuple[str, str, str, Comparison]] = []  # (ctx, method, baseline kind, comparison)
    for ctx in ctxs:
        for kind, base in (("nogda", nogda), ("gda", gda)):
            if base is None or not grid.has(ctx, base):
                continue
            bvals = grid.seeds(ctx, base, "test_acc")
            for m in gen_methods:
                if grid.has(ctx, m):
                    comps.append((ctx, m, kind, paired_compare(grid.seeds(ctx, m, "test_acc"), bvals,
                                                               label=f"{ctx}: {m} vs {base}", options=opts)))
    decided = decide([c for *_, c in comps], opts.alpha)
    comps = [(a, b, k, c) for (a, b, k, _), c in zip(comps, decided)]

    for ctx in ctxs:
        cells: list[Cell] = []
        for m in gen_methods:
            cells += [Cell(grid.summary(ctx, m, METRIC_COLUMNS[x])) for x in ("acc", "auc")]
        for off in (0, 1):
            _bold_best(cells[off::2])
        for ctx_, m, kind, comp in comps:
            if ctx_ == ctx and kind == "nogda":
                _mark(cells[2 * gen_methods.index(m)], comp)
        for kind, base in (("nogda", nogda), ("gda", gda)):
            mine = [(m, c) for ctx_, m, k, c in comps if ctx_ == ctx and k == kind]
            if base is None:
                cells.append(Cell(text="—"))
            elif not grid.has(ctx, base):
                cells.append(Cell(text=f"— (no {base} runs)"))
                notes.append(_no_baseline_note(ctx, base))
            else:
                cells.append(Cell(text=_improved_text(mine, short), detail="; ".join(
                    f"{short[m]}: {c.describe()}" for m, c in mine)))
        table.rows.append((ctx, cells))
    n_tested = sum(c.verdict != "untestable" for *_, c in comps)
    table.notes = [CELL_LEGEND, _legend(opts, n_tested, "no GDA (same WRS setting)"), *_power_notes(opts, n_tested),
                   "'Improved' names the generators whose test ACC is significantly higher than the baseline's; "
                   "'No (n.s.)' means no significant difference."]
    table.notes += notes + [f"{ctx}: {m}{' (vs GDA)' if k == 'gda' else ''} cannot be tested: {c.reason}"
                            for ctx, m, k, c in comps if c.verdict == "untestable"] + grid.notes
    return table


def _improved_text(items: Sequence[tuple[str, Comparison]], short: Mapping[str, str]) -> str:
    improved = [short[m] + (FRAGILE_MARK if c.fragile else "") for m, c in items if c.verdict == "improved"]
    worse = [short[m] + (FRAGILE_MARK if c.fragile else "") for m, c in items if c.verdict == "worse"]
    tested = [m for m, c in items if c.verdict != "untestable"]
    mdes = sorted(c.detectable for m, c in items if c.verdict != "untestable" and c.detectable is not None)
    untestable = [(short[m], c.reason) for m, c in items if c.verdict == "untestable"]
    parts = []
    if improved:
        parts.append("Yes: " + ", ".join(improved))
    elif tested:
        parts.append("No (worse: " + ", ".join(worse) + ")" if worse else "No (n.s.)")
    if untestable:
        reasons = sorted({r for _, r in untestable})
        parts.append("untestable: " + ", ".join(n for n, _ in untestable) + f" ({'; '.join(reasons)})")
    if mdes:  # the smallest gains these comparisons could detect, as the number cells show them
        span = format_detectable(mdes[0]) if mdes[0] == mdes[-1] else \
            f"{format_detectable(mdes[0])}–{format_detectable(mdes[-1])}"
        parts.append(f"[MDE {span}]")
    return "; ".join(parts) if parts else "—"


# ---------------------------------------------------------------------------------------------
# seed 000 Table 5

@dataclass(frozen=True)
class Best:
    context: str
    method: str
    acc: Summary
    comparison: Comparison | None  # against the baseline; None when there is no baseline


def best_methods(grid: Grid) -> dict[str, str]:
    """The method with the highest mean test ACC per context (first in table order on ties)."""
    out = {}
    for ctx in grid.contexts:
        scored = [(grid.summary(ctx, m, "test_acc").mean, -i, m) for i, m in enumerate(grid.methods_of(ctx))]
        scored = [s for s in scored if not math.isnan(s[0])]
        if scored:
            out[ctx] = max(scored)[2]
    return out


def table5(grid: Grid, opts: StatsOptions | None = None) -> Table:
    """Seed 000 Table 5 form: best configuration per dataset (by mean test ACC) and its gain over no GDA/WRS."""
    opts = opts or StatsOptions()
    header = ["Best configuration", "ACC", "AUC", "Baseline ACC", "ACC gain over no GDA/WRS (pp)",
              f"{opts.confidence * 100:g}% CI (pp)", "p (Holm)", f"MDE (pp, power {POWER:g})", "Verdict"]
    table = Table("table5", "Best model per dataset, based on mean test accuracy (seed 000 Table 5 form)",
                  "Dataset", header)
    best = best_methods(grid)
    comps: list[tuple[str, str, Comparison]] = []
    notes = []
    for ctx, m in best.items():
        if not grid.has(ctx, BASELINE_LABEL):
            notes.append(_no_baseline_note(ctx, "no GDA, no WRS, no synthetic set"))
            continue
        if m == BASELINE_LABEL:
            continue
        base = grid.seeds(ctx, BASELINE_LABEL, "test_acc")
        comps.append((ctx, m, paired_compare(grid.seeds(ctx, m, "test_acc"), base, label=f"{ctx}: {m}", options=opts)))
    decided = decide([c for *_, c in comps], opts.alpha)
    by_ctx = {ctx: c for (ctx, _, _), c in zip(comps, decided)}
    for ctx, m in best.items():
        acc = grid.summary(ctx, m, "test_acc")
        auc = grid.summary(ctx, m, "test_auc")
        base = grid.summary(ctx, BASELINE_LABEL, "test_acc") if grid.has(ctx, BASELINE_LABEL) else None
        comp = by_ctx.get(ctx)
        mde = Cell(text="—")
        if base is None:
            gain, ci, p, verdict = Cell(text="— (no baseline runs)"), Cell(text="—"), Cell(text="—"), Cell(text="—")
        elif m == BASELINE_LABEL:
            gain, ci, p, verdict = Cell(text="+0.00 (baseline is best)"), Cell(text="—"), Cell(text="—"), \
                Cell(text="no gain")
        else:
            assert comp is not None
            gain = Cell(text=f"{comp.mean_diff * 100:+.2f} (n={comp.n} matched)" if comp.n else "—",
                        detail=comp.describe())
            if comp.verdict == "untestable":
                ci, p, verdict = Cell(text="—"), Cell(text="—"), Cell(text=f"untestable ({comp.reason})")
            else:
                ci = Cell(text=f"[{comp.ci_low * 100:+.2f}, {comp.ci_high * 100:+.2f}]")
                p = Cell(text=f"{comp.p_holm:.3g}")
                if comp.detectable is not None:
                    mde = Cell(text=format_detectable(comp.detectable), detail=comp.describe())
                verdict = Cell(text={"improved": "improved", "worse": "worse",
                                     "n.s.": "not significant"}[comp.verdict], fragile=comp.fragile)
        table.rows.append((ctx, [Cell(text=m), Cell(acc, bold=True), Cell(auc), Cell(base) if base else Cell(text="—"),
                                 gain, ci, p, mde, verdict]))
    table.notes = [CELL_LEGEND.replace(" Bold: best mean per dataset.", ""),
                   "Gain: mean over matched seeds of (best - baseline) test ACC, in percentage points; CI: percentile "
                   f"bootstrap ({opts.n_boot} resamples, seed {opts.boot_seed}); p: "
                   f"{'paired t-test' if opts.test == 't' else 'Wilcoxon signed-rank'}, Holm-corrected over the "
                   f"{sum(c.verdict != 'untestable' for c in decided)} dataset(s) of this table, alpha {opts.alpha:g}.",
                   "The best configuration is chosen on the same test results it is scored on, so its gain is "
                   "optimistic (selection bias); the test does not correct for that choice.",
                   *_power_notes(opts, sum(c.verdict != 'untestable' for c in decided))]
    table.notes += notes + [f"{ctx}: {c.label.split(': ', 1)[-1]} cannot be tested: {c.reason}"
                            for ctx, c in by_ctx.items() if c.verdict == "untestable"] + grid.notes
    return table


# ---------------------------------------------------------------------------------------------
# seed 003: accuracy, TPR, TNR, FPR

def binary_rates(confusion: object, positive: int = 1) -> dict[str, float] | None:
    """Accuracy, TPR, TNR, FPR (and FNR) from a 2x2 confusion matrix (rows true, columns predicted)."""
    try:
        cm = np.array([list(r) for r in confusion], dtype=float)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if cm.shape != (2, 2):
        return None
    neg = 1 - positive
    tp, fn = cm[positive, positive], cm[positive, neg]
    tn, fp = cm[neg, neg], cm[neg, positive]
    total = cm.sum()

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    return {"accuracy": ratio(tp + tn, total), "tpr": ratio(tp, tp + fn), "tnr": ratio(tn, tn + fp),
            "fpr": ratio(fp, fp + tn), "fnr": ratio(fn, fn + tp)}


def _is_binary(row: pd.Series) -> bool:
    task = row.get("task")
    cm = row.get("test_confusion")
    if isinstance(task, str) and task:
        return task == "binary-class"
    return cm is not None and len(cm) == 2 and all(len(r) == 2 for r in cm)


def _positive_index(dataset: str, class_names: object, positive: Mapping[str, int | str] | None) -> int:
    from medaug.errors import MedaugError

    want = (positive or {}).get(dataset, 1)
    names = list(class_names) if class_names is not None else []
    if isinstance(want, str) and not want.isdigit():
        if want not in names:
            raise MedaugError(f"positive class {want!r} for {dataset}: not a class name; expected one of {names}")
        return names.index(want)
    idx = int(want)
    if idx not in (0, 1):
        raise MedaugError(f"positive class {idx} for {dataset}: expected 0 or 1 (binary task)")
    return idx


def table_binary_rates(grid: Grid, positive: Mapping[str, int | str] | None = None) -> Table:
    """Seed 003 form: accuracy, TPR, TNR, FPR per (context, classifier x augmentation) for binary tasks."""
    header = ["Accuracy", "TPR", "TNR", "FPR"]
    table = Table("binary_rates", "Accuracy, true positive rate, true negative rate and false positive rate on the "
                  "test set, binary tasks (seed 003 form)", "Dataset · configuration", header)
    df = grid.df
    if df.empty:
        return table
    binary = df[df.apply(_is_binary, axis=1)]
    if binary.empty:
        table.notes.append("no binary-task runs in these results: nothing to show in seed 003 form")
        return table
    notes = []
    for ctx in grid.contexts:
        sub = binary[binary["context"] == ctx]
        if sub.empty:
            continue
        dataset = str(sub["dataset"].iloc[0])
        names = sub["class_names"].iloc[0]
        pos = _positive_index(dataset, names, positive)
        pos_name = list(names)[pos] if names is not None and len(names) == 2 else str(pos)
        notes.append(f"{ctx}: positive class = {pos_name!r} (index {pos})")
        block: list[list[Cell]] = []
        for m in grid.methods_of(ctx):
            g = sub[sub["method"] == m]
            if g.empty:
                continue
            rates = [(int(s), binary_rates(cm, pos)) for s, cm in zip(g["seed"], g["test_confusion"])]
            rates = [(s, r) for s, r in rates if r is not None]
            per_seed = pd.DataFrame([{"seed": s, **r} for s, r in rates])
            if per_seed.empty:
                continue
            per_seed = per_seed.groupby("seed").mean()
            cells = [Cell(summarize(per_seed[k].tolist())) for k in ("accuracy", "tpr", "tnr", "fpr")]
            table.rows.append((f"{ctx} · {m}", cells))
            block.append(cells)
        for j in range(4):
            _bold_best([cells[j] for cells in block], lower_is_better=(j == 3))
    table.notes = [CELL_LEGEND.replace("per dataset", "per dataset and column (lowest FPR)"),
                   "TPR = TP/(TP+FN), TNR = TN/(TN+FP), FPR = FP/(FP+TN) = 1 - TNR, from each run's test confusion "
                   "matrix. (Seed 003's slides list as 'FPR' the value 1 - TPR, i.e. the false negative rate.)"]
    table.notes += notes
    return table


# ---------------------------------------------------------------------------------------------
# seed 002: per-class precision / recall / F1

def _per_class(g: pd.DataFrame, column: str, k: int) -> dict[int, float]:
    vals: dict[int, list[float]] = {}
    for s, lst in zip(g["seed"], g[column]):
        if lst is not None and len(lst) > k and lst[k] is not None and not math.isnan(float(lst[k])):
            vals.setdefault(int(s), []).append(float(lst[k]))
    return {s: float(np.mean(v)) for s, v in vals.items()}


def table_per_class(grid: Grid, ctx: str, methods: Sequence[str] | None = None,
                    opts: StatsOptions | None = None) -> Table:
    """Seed 002 Tables 2-3 form for one context: per-class P/R/F1 of the baseline and each method.

    Arrows on F1 cells: significantly better/worse than the baseline for that class
    (paired over matched seeds, Holm over all the table's class x method comparisons).
    """
    opts = opts or StatsOptions()
    has_base = grid.has(ctx, BASELINE_LABEL)
    chosen = [m for m in (methods if methods is not None else grid.methods_of(ctx))
              if m != BASELINE_LABEL and grid.has(ctx, m)]
    cols = ([BASELINE_LABEL] if has_base else []) + chosen
    header = [f"{m} {x}" for m in cols for x in ("P", "R", "F1")]
    table = Table(f"per_class_{slug(ctx)}", f"Per-class precision (P), recall (R) and F1 before and after "
                  f"augmentation, {ctx} (seed 002 Tables 2-3 form)", "Class", header)
    ctx_rows = grid.df[grid.df["context"] == ctx]
    names = next((list(n) for n in ctx_rows["class_names"] if n is not None and len(n)), None)
    if names is None:
        lens = [len(x) for x in ctx_rows["test_f1"] if x is not None]
        names = [str(i) for i in range(max(lens))] if lens else []
    if not names or not cols:
        table.notes.append(f"{ctx}: no per-class metrics (test_precision/recall/f1) in these results")
        return table
    comps: list[tuple[int, str, Comparison]] = []
    for k, name in enumerate(names):
        cells = []
        for m in cols:
            g = grid.rows(ctx, m)
            for col in ("test_precision", "test_recall", "test_f1"):
                cells.append(Cell(summarize(list(_per_class(g, col, k).values())), digits=2))
        for off in range(3):
            _bold_best(cells[off::3])
        table.rows.append((name, cells))
        if has_base:
            base = _per_class(grid.rows(ctx, BASELINE_LABEL), "test_f1", k)
            for m in chosen:
                comps.append((k, m, paired_compare(_per_class(grid.rows(ctx, m), "test_f1", k), base,
                                                   label=f"{ctx}: {name}: {m}", metric="f1", options=opts)))
    decided = decide([c for *_, c in comps], opts.alpha)
    for (k, m, _), comp in zip(comps, decided):
        _mark(table.rows[k][1][cols.index(m) * 3 + 2], comp)
    table.notes = [CELL_LEGEND.replace("Bold: best mean per dataset.", "Bold: best mean per class and metric.")]
    if has_base:
        n_tested = sum(c.verdict != "untestable" for c in decided)
        table.notes += [_legend(opts, n_tested, "no GDA/WRS", what="per-class F1"), *_power_notes(opts, n_tested)]
    else:
        table.notes.append(_no_baseline_note(ctx, "no GDA, no WRS, no synthetic set") + "; no 'before' columns")
    return table


# ---------------------------------------------------------------------------------------------
# gains (for the heatmap) and everything at once

@dataclass(frozen=True)
class Gain:
    context: str
    method: str
    comparison: Comparison


def gains(grid: Grid, opts: StatsOptions | None = None, metric: str = "acc") -> list[Gain]:
    """Every non-baseline method against its context's baseline, Holm over the whole grid."""
    opts = opts or StatsOptions()
    items = []
    for ctx in grid.contexts:
        if not grid.has(ctx, BASELINE_LABEL):
            continue
        base = grid.seeds(ctx, BASELINE_LABEL, METRIC_COLUMNS[metric])
        for m in grid.methods_of(ctx):
            if m != BASELINE_LABEL:
                items.append((ctx, m, paired_compare(grid.seeds(ctx, m, METRIC_COLUMNS[metric]), base,
                                                     label=f"{ctx}: {m}", metric=metric, options=opts)))
    decided = decide([c for *_, c in items], opts.alpha)
    return [Gain(ctx, m, c) for (ctx, m, _), c in zip(items, decided)]


def impossible_comparisons(grid: Grid) -> list[str]:
    """Plain statements of what cannot be compared in these results, and why."""
    out = []
    for ctx in grid.contexts:
        if not grid.has(ctx, BASELINE_LABEL):
            others = [m for m in grid.methods_of(ctx)]
            out.append(f"{ctx}: runs of {', '.join(others)} but no baseline run (no GDA, no WRS, no synthetic set): "
                       "no gain can be computed for this context")
            continue
        base_seeds = set(grid.seeds(ctx, BASELINE_LABEL, "test_acc"))
        for m in grid.methods_of(ctx):
            if m == BASELINE_LABEL:
                continue
            seeds = set(grid.seeds(ctx, m, "test_acc"))
            matched = seeds & base_seeds
            if not matched:
                out.append(f"{ctx}: {m} shares no seed with the baseline (method seeds {sorted(seeds)}, baseline "
                           f"seeds {sorted(base_seeds)}): no paired comparison")
            elif len(matched) < 2:
                out.append(f"{ctx}: {m} has only {len(matched)} seed matched with the baseline: shown, never claimed")
    datasets = sorted(set(grid.df["data"])) if not grid.df.empty else []
    if len(grid.contexts) > len(datasets):
        out.append("some datasets were run under several settings (classifier, size, optimizer, ...); each setting is "
                   "its own context and is compared only with its own baseline")
    return out


def build_tables(results: Results, options: StatsOptions | None = None, *, positive: Mapping[str, int | str] | None
                 = None, geometric: str | None = None, per_class: str = "best") -> dict[str, Table]:
    """All table forms for these results, keyed by `Table.key`.

    `per_class`: "best" (baseline vs the best configuration of each context), "all"
    (baseline vs every method) or "none".
    """
    opts = options or StatsOptions()
    grid = Grid(results)
    tables = {
        "table2": table2(grid, opts),
        "table3": table_generators(grid, False, opts, geometric),
        "table4": table_generators(grid, True, opts, geometric),
        "table5": table5(grid, opts),
        "binary_rates": table_binary_rates(grid, positive),
    }
    if per_class != "none":
        best = best_methods(grid)
        for ctx in grid.contexts:
            methods = None if per_class == "all" else [best[ctx]] if ctx in best else []
            t = table_per_class(grid, ctx, methods, opts)
            tables[t.key] = t
    if results.generator_eval is not None:  # seed 001's confidence table and generator fidelity
        from medaug.analysis.generator_tables import generator_tables

        if results.rows.empty:  # a generator study's folder: no classifier rows, no classifier tables
            tables = {}
        tables.update(generator_tables(results.generator_eval))
    return tables
