"""What each result row *is*: its context (what it may be compared with) and its method.

Two runs are comparable only when they share a **context**: the same data (the row's
`data` label: the dataset, told apart by its tree, copy and data options where one source
makes several, `medaug.analysis.data_label`) and the same training setting (image size,
recipe, classifier, optimizer, lr, epochs, batch, ..., test-time augmentation). A context
is labelled by its data, its recipe when the rows hold more than one, and the settings
that vary beyond what the recipes explain.
Inside a context they differ by their **method**: geometric augmentation, WRS, and
the generator (and mixing strategy) of the synthetic set, if any. Seeds are the
replicates of a (context, method) cell.

The **baseline** of a context is seed 000's "no GDA or WRS": no geometric
augmentation, no WRS, no synthetic images. Comparisons across contexts (another
dataset, another classifier) are never made.
"""

from __future__ import annotations

import json
import re

import pandas as pd

from medaug.analysis.data_label import data_labels

# Spec fields that make up a context (everything in the spec but the method and the seed).
SETTING_FIELDS = ("dataset", "size", "recipe", "recipe_version", "classifier", "optimizer", "nesterov", "lr", "momentum",
                  "weight_decay", "schedule", "milestones", "warmup", "epochs", "min_steps", "batch_size",
                  "label_smoothing", "ema", "translate", "select_metric", "tta")

# Display names, in the words of the seed studies (seed 000 Tables 3-4, seeds 001-003).
GENERATOR_NAMES = {
    "cvae": "Conditional VAE",
    "jvae": "Joint VAE",
    "cgan": "Conditional GAN",
    "dcgan": "DCGAN",
    "cwgan-gp": "cWGAN-GP",
    "vaegan": "VAE-GAN",
    "stylegan2ada": "StyleGAN2-ADA",
}
GENERATOR_ORDER = tuple(GENERATOR_NAMES)

BASELINE_LABEL = "no GDA/WRS"


def parse_provenance(text: object) -> tuple[str | None, str | None]:
    """(generator, strategy) from a row's `synthetic_provenance` JSON; (None, None) if unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None, None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    gen, strat = data.get("generator"), data.get("strategy")
    if isinstance(gen, dict):  # {"name": ..., "config": ...}
        gen = gen.get("name")
    if isinstance(strat, dict):
        strat = strat.get("name")
    return (str(gen) if gen else None), (str(strat) if strat else None)


def _fmt_setting(name: str, value: object) -> str:
    if name == "size":
        return f"{value}px"
    if name in ("classifier", "recipe"):
        return str(value)
    if name == "tta":
        return f"TTA {value}"
    return f"{name}={value}"


def _setting_value(value: object) -> object:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def slug(text: str) -> str:
    """A file-name-safe form of a label."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def annotate(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Add `data` (`medaug.analysis.data_label`), `context`, `context_key`, `generator`, `strategy`, `geometric`, `method`, `method_key`,
    `method_rank` and `is_baseline` columns; returns (annotated copy, notes)."""
    df = df.copy()
    notes: list[str] = []
    parsed = [parse_provenance(p) for p in df["synthetic_provenance"]]
    has_syn = df["synthetic"].notna() & (df["synthetic"].astype("string").str.len() > 0)
    generators, strategies = [], []
    unreadable = 0
    for (gen, strat), syn in zip(parsed, has_syn):
        if syn and gen is None:
            unreadable += 1
            gen = "synthetic"
        generators.append(gen if syn else None)
        strategies.append(strat if syn else None)
    if unreadable:
        notes.append(f"{unreadable} row(s) use a synthetic set whose provenance names no generator; "
                     "they are labelled 'synthetic'")
    df["generator"] = pd.Series(generators, index=df.index, dtype=object)
    df["strategy"] = pd.Series(strategies, index=df.index, dtype=object)
    aug = df["augmentation"].fillna("none").astype(str)
    df["augmentation"] = aug
    df["wrs"] = df["wrs"].fillna(False).astype(bool)
    df["geometric"] = aug != "none"

    geometric_names = sorted(set(aug[df["geometric"]]))
    strategies_per_gen: dict[str, set] = {}
    for gen, strat in zip(df["generator"], df["strategy"]):
        if gen is not None:
            strategies_per_gen.setdefault(gen, set()).add(strat)

    def label(a: str, wrs: bool, gen: str | None, strat: str | None) -> str:
        parts = []
        if wrs:
            parts.append("WRS")
        if a != "none":
            parts.append("geometric" if len(geometric_names) <= 1 else a)
        if gen is not None:
            name = GENERATOR_NAMES.get(gen, gen)
            if len(strategies_per_gen.get(gen, ())) > 1 and strat:
                name = f"{name} ({strat})"
            parts.append(name)
        return " + ".join(parts) if parts else BASELINE_LABEL

    def rank(a: str, wrs: bool, gen: str | None, strat: str | None) -> tuple:
        g = (GENERATOR_ORDER.index(gen) if gen in GENERATOR_ORDER else len(GENERATOR_ORDER)) if gen else -1
        return (gen is not None, g, gen or "", strat or "", a != "none", a, wrs)

    keys = list(zip(aug, df["wrs"], df["generator"], df["strategy"]))
    df["method"] = [label(*k) for k in keys]
    df["method_key"] = ["|".join(["" if v is None else str(v) for v in k]) for k in keys]
    ranks = sorted(set(rank(*k) for k in keys))
    df["method_rank"] = [ranks.index(rank(*k)) for k in keys]
    df["is_baseline"] = (aug == "none") & ~df["wrs"] & df["generator"].isna()

    # the data, not the source's name: two class-folder trees, or two COVID crops, are two contexts
    df["data"] = data_labels(*(df[c].tolist() if c in df else [None] * len(df)
                               for c in ("dataset", "size", "data_options", "dataset_md5")))
    values = {f: df[f].map(_setting_value) if f in df else pd.Series("", index=df.index) for f in SETTING_FIELDS}
    values["dataset"] = df["data"].astype(str)
    recipes = values["recipe"]
    # a field that differs only between recipes is said by the recipe's name
    varying = [f for f in SETTING_FIELDS[1:] if values[f].nunique(dropna=False) > 1
               and (f == "recipe" or any(v.nunique(dropna=False) > 1 for _, v in values[f].groupby(recipes)))]
    df["context_key"] = ["|".join(parts) for parts in zip(*(values[f] for f in SETTING_FIELDS))] if len(df) else []
    labels = []
    for i in range(len(df)):
        extra = [_fmt_setting(f, values[f].iloc[i]) for f in varying]
        labels.append(" · ".join([str(df["data"].iloc[i])] + extra))
    df["context"] = labels
    return df, notes


def contexts(df: pd.DataFrame) -> list[str]:
    """Context labels in a stable order (dataset, then label)."""
    if df.empty:
        return []
    return list(df.sort_values(["dataset", "context"], kind="stable")["context"].drop_duplicates())


def methods_in(df: pd.DataFrame) -> list[str]:
    """Method labels ordered as the seed-000 tables order them (baseline, WRS, geometric, ..., generators)."""
    if df.empty:
        return []
    return list(df.sort_values("method_rank", kind="stable")["method"].drop_duplicates())
