"""Figures of an analysis (PNG and SVG), drawn with matplotlib's object API and the Agg renderer.

No `pyplot`: figures are `matplotlib.figure.Figure` objects rendered to bytes, so
nothing here touches a global backend (safe in notebooks, threads and headless
machines). Each `*_figure` function returns a Figure (or None when the data for it
are absent); `render` turns one into PNG and SVG bytes; `save` writes them whole.

Figures (seed 000 figure numbers in brackets):
- confusion matrix of the best configuration per dataset, summed over seeds [Figs. 29-44];
- per-epoch train loss / validation ACC / validation AUC, mean and range over seeds [Figs. 30-44];
- class counts per dataset (test split, from the rows' supports) [Figs. 10-17];
- datasets x methods heatmap of the mean ACC gain over the baseline, with Holm-corrected marks
  (a dagger on those resting on fewer than 5 matched seeds, as in the tables);
- generator loss curves from a generator run's loss table [Fig. 27];
- montage of synthetic images per class from a Zarr v3 store [Fig. 28];
- generator fidelity (FID, precision/recall) beside utility (downstream gain, TSTR).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from medaug.analysis.stats import FRAGILE_MARK, RankCorrelation, fragile_note, rank_correlation
from medaug.analysis.methods import BASELINE_LABEL, GENERATOR_NAMES
from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write

RC = {"svg.hashsalt": "medaug", "font.size": 9, "axes.titlesize": 10}
PNG_DPI = 100


@dataclass
class RenderedFigure:
    """A figure as files: `name` is the file stem (name.png, name.svg)."""

    name: str
    caption: str
    png: bytes
    svg: bytes


def render(fig: Figure, name: str, caption: str = "") -> RenderedFigure:
    out = {}
    with matplotlib.rc_context(RC):
        for fmt in ("png", "svg"):
            buf = io.BytesIO()
            meta = {"Date": None} if fmt == "svg" else {"Software": "medaug"}
            fig.savefig(buf, format=fmt, dpi=PNG_DPI, metadata=meta)
            out[fmt] = buf.getvalue()
            fig.set_layout_engine("none")  # keep the positions laid out for the PNG: half the layout cost
    return RenderedFigure(name, caption, out["png"], out["svg"])


def save(rendered: RenderedFigure, folder: str | Path) -> list[Path]:
    """Write name.png and name.svg under `folder`, each whole or not at all."""
    paths = []
    for ext in ("png", "svg"):
        path = Path(folder) / f"{rendered.name}.{ext}"
        data = getattr(rendered, ext)
        atomic_write(path, lambda tmp, data=data: tmp.write_bytes(data))
        paths.append(path)
    return paths


def _figure(w: float, h: float) -> Figure:
    with matplotlib.rc_context(RC):
        return Figure(figsize=(w, h), layout="constrained")


def _short(name: str, n: int = 16) -> str:
    name = str(name)
    return name if len(name) <= n else name[: n - 1] + "…"


# ---------------------------------------------------------------------------------------------
# classifier runs

def confusion_figure(rows: pd.DataFrame, title: str) -> Figure | None:
    """Confusion matrix summed over the given runs (one configuration's seeds), row-normalised colours."""
    mats = [np.array([list(r) for r in cm], dtype=float) for cm in rows["test_confusion"] if cm is not None]
    if not mats or any(m.shape != mats[0].shape for m in mats):
        return None
    cm = np.sum(mats, axis=0)
    names = next((list(n) for n in rows["class_names"] if n is not None and len(n)), None)
    task = next((t for t in rows["task"] if isinstance(t, str)), "")
    multilabel = task.startswith("multi-label") or (cm.shape[1] == 4 and cm.shape[0] != 4)
    k = cm.shape[0]
    fig = _figure(max(3.5, 0.45 * (4 if multilabel else k) + 2.5), max(3.0, 0.4 * k + 1.8))
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        if k <= 16:
            for i in range(k):
                for j in range(cm.shape[1]):
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.6 else "black")
        ylabels = [_short(n) for n in names] if names and len(names) == k else [str(i) for i in range(k)]
        ax.set_yticks(range(k), ylabels)
        if multilabel:
            ax.set_xticks(range(4), ["TN", "FP", "FN", "TP"])
            ax.set_xlabel("outcome per label")
        else:
            slant = k > 3 or max(len(x) for x in ylabels) > 8
            ax.set_xticks(range(k), ylabels, rotation=45 if slant else 0, ha="right" if slant else "center")
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
        fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
        ax.set_title(f"{title}\n(sum over {len(mats)} run{'s' if len(mats) != 1 else ''})")
    return fig


def curves_figure(rows: pd.DataFrame, title: str) -> Figure | None:
    """Per-epoch train loss, validation ACC and AUC: mean over seeds with the min-max range shaded."""
    frames = []
    for seed, hist in zip(rows["seed"], rows["history"]):
        if hist is None or len(hist) == 0:
            continue
        h = pd.DataFrame(list(hist))
        if "epoch" not in h:
            h["epoch"] = np.arange(1, len(h) + 1)
        h["seed"] = seed
        frames.append(h)
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    panels = [(c, lbl) for c, lbl in (("train_loss", "train loss"), ("val_acc", "validation ACC"),
                                      ("val_auc", "validation AUC")) if c in df and df[c].notna().any()]
    if not panels:
        return None
    fig = _figure(3.2 * len(panels), 2.8)
    with matplotlib.rc_context(RC):
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (col, label) in zip(axes, panels):
            g = df.groupby("epoch")[col].agg(["mean", "min", "max"]).dropna()
            ax.plot(g.index, g["mean"], marker="o", ms=3, label="mean")
            if len(frames) > 1:
                ax.fill_between(g.index, g["min"], g["max"], alpha=0.25, label="min-max over seeds")
            if col == "train_loss" and "val_loss" in df and df["val_loss"].notna().any():
                v = df.groupby("epoch")["val_loss"].mean()
                ax.plot(v.index, v.values, ls="--", label="validation loss")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(label)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{title} ({df['seed'].nunique()} seed(s))")
    return fig


def class_distribution_figure(rows: pd.DataFrame) -> Figure | None:
    """Test-split class counts per dataset (the rows carry `test_support`; train counts are not stored)."""
    per_ds = []
    for ds, g in rows.groupby("data" if "data" in rows else "dataset", sort=True):
        for names, support in zip(g["class_names"], g["test_support"]):
            if support is not None and len(support):
                names = list(names) if names is not None and len(names) == len(support) else \
                    [str(i) for i in range(len(support))]
                per_ds.append((ds, names, [int(s) for s in support]))
                break
    if not per_ds:
        return None
    n = len(per_ds)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(3.4 * ncols, 2.8 * nrows)
    with matplotlib.rc_context(RC):
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (ds, names, support) in zip(axes, per_ds):
            ax.bar(range(len(support)), support, color="tab:blue")
            ax.set_xticks(range(len(support)), [_short(x, 12) for x in names], rotation=45, ha="right", fontsize=7)
            ax.set_title(f"{ds} (test split, {sum(support)} images)")
            ax.set_ylabel("images")
        for ax in axes[n:]:
            ax.set_visible(False)
    return fig


def gain_heatmap_legend(gains: Sequence) -> str:
    """The legend line of the fragile dagger when some arrow of the heatmap carries one, else ""."""
    return fragile_note() if any(g.comparison.fragile for g in gains) else ""


def gain_heatmap_figure(gains: Sequence, metric: str = "ACC") -> Figure | None:
    """Contexts x methods: mean paired gain over the baseline (pp); ↑/↓ significant after Holm, n.s. blank;
    † after an arrow resting on fewer than 5 matched seeds (as in the tables), explained under the plot."""
    if not gains:
        return None
    ctxs = list(dict.fromkeys(g.context for g in gains))
    methods = list(dict.fromkeys(g.method for g in gains))
    val = np.full((len(ctxs), len(methods)), np.nan)
    text = [["" for _ in methods] for _ in ctxs]
    for g in gains:
        i, j = ctxs.index(g.context), methods.index(g.method)
        c = g.comparison
        if c.n >= 1:
            val[i, j] = c.mean_diff * 100
        mark = {"improved": "↑", "worse": "↓"}.get(c.verdict, "") + (FRAGILE_MARK if c.fragile else "")
        text[i][j] = "n/a" if c.n == 0 else f"{c.mean_diff * 100:+.1f}{mark}" + (" (n=1)" if c.n == 1 else "")
    lim = np.nanmax(np.abs(val)) if np.isfinite(val).any() else 1.0
    lim = max(lim, 0.1)
    fig = _figure(1.1 * len(methods) + 2.5, 0.45 * len(ctxs) + 1.8)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        im = ax.imshow(np.ma.masked_invalid(val), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
        for i in range(len(ctxs)):
            for j in range(len(methods)):
                dark = np.isfinite(val[i, j]) and abs(val[i, j]) > 0.6 * lim
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7, color="white" if dark else "black")
        ax.set_xticks(range(len(methods)), [_short(m, 22) for m in methods], rotation=30, ha="right")
        ax.set_yticks(range(len(ctxs)), [_short(c, 28) for c in ctxs])
        fig.colorbar(im, ax=ax, label=f"{metric} gain (pp)")
        ax.set_title(f"Mean {metric} gain over {BASELINE_LABEL} (↑/↓: significant after Holm)")
        legend = gain_heatmap_legend(gains)
        if legend:  # about 3.5 pt per character at 6 pt: wrapped to the figure's width
            width = int(fig.get_figwidth() * 72 / 3.5)
            fig.supxlabel(textwrap.fill(legend, max(40, width)), fontsize=6, ha="left", x=0.01)
    return fig


# ---------------------------------------------------------------------------------------------
# generators

LOSS_SUFFIXES = (".csv", ".parquet", ".jsonl", ".tsv")
X_COLUMNS = ("global_step", "step", "iteration", "iter", "kimg", "epoch")


def read_loss_table(path: str | Path) -> pd.DataFrame | None:
    """A generator run's loss table (CSV, TSV, Parquet or JSON lines), or None if unreadable."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        if path.suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
        return pd.read_csv(path)
    except (OSError, ValueError, ImportError, pd.errors.ParserError):
        return None


def find_loss_tables(folder: str | Path) -> list[Path]:
    """Loss tables in a generator run folder: files whose name mentions loss/log/history/metrics."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    keys = ("loss", "log", "history", "metrics")
    found = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in LOSS_SUFFIXES
             and any(k in p.stem.lower() for k in keys) and not p.name.startswith(".")]
    # a folder with a per-epoch table (medaug's losses_epochs.csv beside losses_steps.csv): use that one
    per_epoch = {p.parent for p in found if "epoch" in p.stem.lower()}
    return [p for p in found if p.parent not in per_epoch or "epoch" in p.stem.lower()]


def generator_loss_figure(table: pd.DataFrame, title: str) -> Figure | None:
    """Loss columns (names containing 'loss', else all numeric) against step/iteration/kimg/epoch."""
    if table is None or table.empty:
        return None
    numeric = table.select_dtypes("number")
    xcol = next((c for c in X_COLUMNS if c in numeric), None)
    ys = [c for c in numeric if "loss" in str(c).lower() and c != xcol] or \
         [c for c in numeric if c != xcol and c not in ("seed", "rank", "time", "seconds")]
    if not ys:
        return None
    x = table[xcol] if xcol else pd.Series(np.arange(len(table)))
    fig = _figure(5.5, 3.2)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        grouped = xcol is not None and x.duplicated().any()  # several rows per epoch: plot the mean
        for c in ys[:8]:
            series = table.groupby(xcol)[c].mean() if grouped else pd.Series(table[c].values, index=x.values)
            ax.plot(series.index, series.values, label=str(c), lw=1)
        ax.set_xlabel(xcol or "row")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(title)
    return fig


def parse_synthetic_ref(ref: str) -> tuple[Path, str]:
    """'STORE.zarr#GROUP' -> (store path, group path); a bare store means its root group."""
    store, _, group = str(ref).partition("#")
    return Path(store), group


def _open_group(store: Path, group: str):
    import zarr

    if not store.exists():
        raise MedaugError(f"{store}: no such Zarr store")
    try:
        if store.is_file() and store.suffix == ".zip":
            from zarr.storage import ZipStore

            root = zarr.open_group(ZipStore(str(store), mode="r"), mode="r")
        else:
            root = zarr.open_group(str(store), mode="r")
        return root[group] if group else root
    except Exception as exc:  # zarr raises several types for a missing or unreadable group
        raise MedaugError(f"{store}#{group}: not a readable Zarr group ({exc.__class__.__name__}: {exc})") from None


def attrs_complete(grp) -> bool | None:
    """The group's `complete` flag (issue 4 writes it last); None when the store has no such flag."""
    value = dict(grp.attrs).get("complete")
    return None if value is None else bool(value)


def _class_names_from_attrs(attrs: dict) -> list[str] | None:
    for holder in (attrs, attrs.get("provenance") or {}, attrs.get("dataset") or {}):
        if isinstance(holder, dict) and isinstance(holder.get("class_names"), list):
            return [str(x) for x in holder["class_names"]]
    return None


def montage_figure(store: str | Path, group: str = "", per_class: int = 8, seed: int = 0) -> Figure:
    """A grid of synthetic images, one row per class, read from a Zarr v3 group (`images`, `labels`)."""
    grp = _open_group(Path(store), group)
    try:
        images, labels = grp["images"], grp["labels"]
    except KeyError:
        raise MedaugError(f"{store}#{group}: expected arrays 'images' and 'labels'") from None
    if len(images.shape) != 4:
        raise MedaugError(f"{store}#{group}: images have shape {images.shape}; expected N x C x H x W")
    if attrs_complete(grp) is False:
        raise MedaugError(f"{store}#{group}: the set is incomplete (no 'complete' flag): not shown")
    lab = np.asarray(labels[:])
    n, c, h, w = images.shape
    if lab.ndim == 2 and lab.shape[1] > 1:  # multi-label: a row per label
        classes = list(range(lab.shape[1]))
        members = {k: np.flatnonzero(lab[:, k] > 0) for k in classes}
    else:
        lab = lab.reshape(-1).astype(int)
        classes = sorted(set(lab.tolist()))
        members = {k: np.flatnonzero(lab == k) for k in classes}
    attrs = dict(grp.attrs)
    names = _class_names_from_attrs(attrs)
    rng = np.random.default_rng(seed)
    pad = 1
    mosaic = np.full((len(classes) * (h + pad), per_class * (w + pad), 3), 255, dtype=np.uint8)
    picks = {k: np.sort(rng.choice(members[k], size=min(per_class, len(members[k])), replace=False))
             for k in classes if len(members[k])}
    wanted = np.unique(np.concatenate([p for p in picks.values()])) if picks else np.array([], dtype=int)
    block = np.asarray(images.oindex[wanted]) if len(wanted) else np.zeros((0, c, h, w), np.uint8)  # one read
    where = {int(i): j for j, i in enumerate(wanted)}
    for r, k in enumerate(classes):
        for col, i in enumerate(picks.get(k, [])):
            img = block[where[int(i)]]
            img = np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img[:3]
            mosaic[r * (h + pad): r * (h + pad) + h, col * (w + pad): col * (w + pad) + w] = img.transpose(1, 2, 0)
    fig = _figure(max(3.0, 0.5 * per_class + 1.5), max(1.5, 0.5 * len(classes) + 0.8))
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        ax.imshow(mosaic, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([r * (h + pad) + h / 2 for r in range(len(classes))],
                      [_short(names[k]) if names and k < len(names) else f"class {k}" for k in classes])
        gen = attrs.get("generator") or (attrs.get("provenance") or {}).get("generator")
        if isinstance(gen, dict):
            gen = gen.get("name")
        label = GENERATOR_NAMES.get(str(gen), str(gen)) if gen else "synthetic"
        ax.set_title(f"{label}: {Path(store).name}#{group} ({n} images)")
    return fig


FIDELITY_LABELS = {"gain_pp": "downstream ACC gain (pp)", "tstr_ratio": "TSTR ACC / TRTR ACC", "tstr_acc": "TSTR ACC"}
#: Bootstrap of the fidelity-utility rank correlation (fixed seed: a report is reproducible).
RANK_BOOT, RANK_SEED = 10_000, 0


def fidelity_utility_points(gen_eval: pd.DataFrame | None, utility: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per (dataset, generator): mean fidelity columns, `fid_above_floor`, `tstr_ratio`
    and the utility columns (gain_pp, verdict) merged in; None without evaluations."""
    if gen_eval is None or gen_eval.empty:
        return None
    ev = gen_eval.copy()
    ev["generator"] = ev["generator"].astype(str)
    ev["dataset"] = (ev["data"] if "data" in ev else ev["dataset"]).astype(str)  # `_utility`'s key: the data label
    agg = ev.groupby(["dataset", "generator"]).mean(numeric_only=True).reset_index()
    if utility is not None and not utility.empty:
        agg = agg.merge(utility, on=["dataset", "generator"], how="left")
    else:
        agg["gain_pp"] = np.nan
        agg["verdict"] = None
    if "fid_floor" in agg and agg["fid_floor"].notna().any():
        agg["fid_above_floor"] = agg["fid"] - agg["fid_floor"]
    if "tstr_acc" in agg and "trtr_acc" in agg:
        agg["tstr_ratio"] = agg["tstr_acc"] / agg["trtr_acc"]
    return agg


def _fidelity_panels(agg: pd.DataFrame) -> tuple[str, list[str]]:
    """The FID column plotted and the utility columns it is plotted against."""
    fid_x = "fid_above_floor" if "fid_above_floor" in agg else "fid"
    ys = []
    if agg[fid_x].notna().any() and agg["gain_pp"].notna().any():
        ys.append("gain_pp")
    if agg[fid_x].notna().any() and "tstr_ratio" in agg and agg["tstr_ratio"].notna().any():
        ys.append("tstr_ratio")
    elif agg[fid_x].notna().any() and agg["tstr_acc"].notna().any():
        ys.append("tstr_acc")
    return fid_x, ys


def fidelity_utility_correlations(gen_eval: pd.DataFrame | None,
                                  utility: pd.DataFrame | None) -> dict[str, RankCorrelation]:
    """Spearman's rho (bootstrap CI) between the plotted FID and each plotted utility, across
    (dataset, generator) points; {utility column: `stats.RankCorrelation`}."""
    agg = fidelity_utility_points(gen_eval, utility)
    if agg is None:
        return {}
    fid_x, ys = _fidelity_panels(agg)
    return {y: rank_correlation(agg[fid_x], agg[y], n_boot=RANK_BOOT, seed=RANK_SEED) for y in ys}


def fidelity_utility_text(gen_eval: pd.DataFrame | None, utility: pd.DataFrame | None) -> str:
    """The correlations as one sentence for the report text ('' without evaluations)."""
    corr = fidelity_utility_correlations(gen_eval, utility)
    return " ".join(f"FID vs {FIDELITY_LABELS[y]}: {c.text}." for y, c in corr.items())


def fidelity_utility_figure(gen_eval: pd.DataFrame | None, utility: pd.DataFrame | None) -> Figure | None:
    """Fidelity (FID, precision/recall) beside utility (downstream ACC gain, TSTR ACC), one point per
    (dataset, generator). `utility` has columns dataset, generator, gain_pp, verdict.

    Low FID need not mean useful augmentation: the panels put the two side by side, and each
    FID panel states Spearman's rank correlation with its bootstrap CI (or that there are
    too few points for one), so a reader sees whether fidelity predicts utility.
    """
    agg = fidelity_utility_points(gen_eval, utility)
    if agg is None:
        return None
    fid_x, ys = _fidelity_panels(agg)
    corr = fidelity_utility_correlations(gen_eval, utility)
    panels = [(fid_x, y, FIDELITY_LABELS[y]) for y in ys]
    if agg["precision"].notna().any() and agg["recall"].notna().any():
        panels.append(("precision", "recall", "recall"))
    if not panels:
        return None
    fig = _figure(3.6 * len(panels), 3.2)
    with matplotlib.rc_context(RC):
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (x, y, ylabel) in zip(axes, panels):
            sub = agg[agg[x].notna() & agg[y].notna()]
            filled = sub["verdict"].eq("improved") if "verdict" in sub else pd.Series(False, index=sub.index)
            ax.scatter(sub[x], sub[y], s=30, c=np.where(filled, "tab:green", "tab:gray"), edgecolors="black")
            for _, r in sub.iterrows():
                ax.annotate(f"{GENERATOR_NAMES.get(r['generator'], r['generator'])}\n{r['dataset']}", (r[x], r[y]),
                            fontsize=6, xytext=(3, 3), textcoords="offset points")
            if y == "gain_pp":
                ax.axhline(0, color="black", lw=0.5)
            if y in corr:
                ax.text(0.02, 0.98, corr[y].short, transform=ax.transAxes, va="top", fontsize=6,
                        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
            ax.set_xlabel({"fid_above_floor": "FID - real-vs-real floor", "fid": "FID"}.get(x, x))
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        fig.suptitle("Generator fidelity vs utility (green: ACC gain significant after Holm)")
    return fig
