"""Tables of generator-evaluation rows (`OUT/generator-eval/*.parquet`): generator studies,
and the fits a classifier study's --make-synthetic evaluated.

- `generator_confidence` [seed 001, Table 2]: per data set (rows) and model (columns),
  the reference classifier's mean probability of the intended class on the generated
  images (`mean_confidence`), mean ± std over the model's fits (generator seeds), and a
  last row "Mean of mean confidence" (the mean over data sets of each model's mean, n =
  data sets), as the seed prints it.
- `generator_fidelity`: per data set and model, FID with its real-vs-real floor, KID,
  precision/recall, coverage, TSTR and TRTR balanced accuracy (when evaluated), the
  near-copy share (pixel space) and the mean confidence.

Rows are grouped by what makes their numbers comparable: the data set and image size,
and the evaluation protocol (reference recipe and extractor); a second protocol for
the same data set gets its own table row, labelled with it. No paired tests here: the
fits of two models share no seed structure a pairing could use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from medaug.analysis.render import Cell, Table
from medaug.analysis.stats import summarize

#: Column order of the seed-001 form; other generators follow, sorted.
MODEL_ORDER = ("geometric", "cvae", "dcgan", "vaegan")
MODEL_NAMES = {"geometric": "Geometric", "cvae": "CVAE", "dcgan": "DCGAN", "vaegan": "CVAEDCGAN (vaegan)"}
MEAN_ROW = "Mean of mean confidence"

#: (column, header, scale, digits) of the fidelity table.
FIDELITY_COLUMNS = (
    ("fid", "FID", 1.0, 2), ("fid_floor", "FID floor", 1.0, 2), ("kid_mean", "KID ×1000", 1000.0, 2),
    ("precision", "precision %", 100.0, 1), ("recall", "recall %", 100.0, 1), ("coverage", "coverage %", 100.0, 1),
    ("tstr_balanced_acc", "TSTR bal. ACC %", 100.0, 1), ("trtr_balanced_acc", "TRTR bal. ACC %", 100.0, 1),
    ("near_copy_share_pixel", "near-copies %", 100.0, 1), ("mean_confidence", "confidence %", 100.0, 2),
)


def models(ev: pd.DataFrame) -> list[str]:
    present = set(ev["generator"].astype(str))
    return [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))


def row_labels(ev: pd.DataFrame) -> pd.Series:
    """A row's group label: the data set, with size and protocol only where they differ."""
    ev = ev.copy()
    size = ev["size"] if "size" in ev else pd.Series(28, index=ev.index)
    protocol = ev["recipe"].fillna("?").astype(str) + ", " + ev["extractor"].fillna("?").astype(str)
    labels = (ev["data"] if "data" in ev else ev["dataset"]).astype(str)  # two folder trees: two rows
    for ds, g in ev.groupby(labels):
        sizes = set(size[g.index])
        protos = set(protocol[g.index])
        if len(sizes) > 1:
            labels[g.index] = labels[g.index] + " " + size[g.index].astype(str) + " px"
        if len(protos) > 1:
            labels[g.index] = labels[g.index] + " (" + protocol[g.index] + ")"
    return labels


def confidence_table(ev: pd.DataFrame) -> Table:
    """Seed 001 Table 2 form: mean classifier confidence per data set x model, in %."""
    ev = ev.assign(_row=row_labels(ev))
    cols = models(ev)
    table = Table("generator_confidence", "Mean classifier confidence on generated images (seed 001 Table 2)",
                  "Dataset", [MODEL_NAMES.get(m, m) for m in cols])
    per_model: dict[str, list[float]] = {m: [] for m in cols}
    for label in sorted(set(ev["_row"])):
        g = ev[ev["_row"] == label]
        cells = []
        for m in cols:
            s = summarize(list(g.loc[g["generator"].astype(str) == m, "mean_confidence"]))
            cells.append(Cell(value=s))
            if s.n:
                per_model[m].append(s.mean)
        _bold_max(cells)
        table.rows.append((label, cells))
    if table.rows:
        mean_cells = [Cell(value=summarize(per_model[m])) for m in cols]
        _bold_max(mean_cells)
        table.rows.append((MEAN_ROW, mean_cells))
    n_values = ev.groupby(["_row", "generator"]).size()
    table.notes += [
        "Cells: mean ± std over a model's evaluated fits (n = fits, e.g. generator seeds), in %: the reference "
        "classifier's mean probability of the intended class on the generated images (n images per fit, the "
        "row's `n`). Bold: highest per row.",
        f"{MEAN_ROW}: mean over the rows of each model's mean (n = rows), as seed 001 prints it.",
        f"Protocol(s): {', '.join(sorted(set(ev['recipe'].fillna('?').astype(str))))} reference recipe; "
        f"{len(ev)} evaluation(s), {int(n_values.min()) if len(n_values) else 0}-"
        f"{int(n_values.max()) if len(n_values) else 0} per cell.",
        "A high confidence says the classifier recognises the intended class, not that the images are diverse "
        "or useful for training: read it beside the fidelity table and the downstream gain.",
    ]
    return table


def fidelity_table(ev: pd.DataFrame) -> Table:
    """Per data set x model: FID and floor, KID, precision/recall, coverage, TSTR/TRTR, near-copies, confidence."""
    ev = ev.assign(_row=row_labels(ev))
    cols = [c for c in FIDELITY_COLUMNS if c[0] in ev and ev[c[0]].notna().any()]
    table = Table("generator_fidelity", "Generator fidelity, utility proxies and memorisation", "Dataset / model",
                  [c[1] for c in cols])
    for label in sorted(set(ev["_row"])):
        g = ev[ev["_row"] == label]
        for m in models(g):
            sub = g[g["generator"].astype(str) == m]
            cells = [Cell(value=summarize(list(pd.to_numeric(sub[c], errors="coerce"))), scale=scale, digits=digits)
                     for c, _, scale, digits in cols]
            table.rows.append((f"{label} / {MODEL_NAMES.get(m, m)}", cells))
    table.notes += [
        "Cells: mean ± std over a model's evaluated fits (n). FID/KID in the extractor's features of the row's "
        "protocol; the floor is real test vs real train with the same extractor and n: a FID near its floor is "
        "as close as two real samples are.",
        "TSTR: the reference recipe trained on generated images only, tested on real test images (balanced "
        "accuracy); TRTR the same trained on real images. near-copies: share of generated images that are "
        "near-copies of a train image (pixel space, Carlini et al. 2023's ratio test).",
    ]
    return table


def _bold_max(cells: Sequence[Cell]) -> None:
    vals = [c.value.mean if c.value is not None and c.value.n else math.nan for c in cells]
    finite = [v for v in vals if not math.isnan(v)]
    if len(finite) >= 2:
        best = max(finite)
        for c, v in zip(cells, vals):
            c.bold = v == best


def generator_tables(gen_eval: pd.DataFrame | None) -> dict[str, Table]:
    """The generator-evaluation tables, keyed by `Table.key` ({} without rows)."""
    if gen_eval is None or gen_eval.empty:
        return {}
    ev = gen_eval.copy()
    ev["mean_confidence"] = pd.to_numeric(ev.get("mean_confidence"), errors="coerce")
    return {t.key: t for t in (confidence_table(ev), fidelity_table(ev))}


__all__ = ["MEAN_ROW", "confidence_table", "fidelity_table", "generator_tables"]
