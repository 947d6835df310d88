"""Which data a result row was trained and tested on: the `data` label of every analysis.

A row's `dataset` names a data *source*, and some sources make many different data sets:
`folder` reads any class-folder tree (issue 13 item 5), the COVID and ISIC sources take
options that change the images or the split (`lung_crop`, `test_per_class`,
`val_fraction`, `split_seed`, ...). Two rows are comparable only when they saw the same
data, so the analysis groups rows by `data`, never by `dataset` alone:

- a `folder` row is `folder:<root's last name>@<8 characters of dataset_md5>`, the hash
  of the tree's relative file names and byte sizes: the same tree read from two machines
  (`root: xrays` here, `/data/xrays` there) is one label, two trees are two, whatever
  their folder names. `folder` alone when the root is the data root itself (`.`).
  A failed row (no data was read, so no md5) takes the md5 of the finished rows whose
  data options are exactly its own, when they agree on one;
- data options that differ between rows of one source (or one tree) are appended, as
  ` · name=value` (`covid19-radiography · lung_crop=false`); an option a source leaves
  out of the row at its default (COVID's `lung_crop`, so that older rows keep their
  run ids) counts as that default;
- two copies of a source with different `dataset_md5` at the same size and options (two
  versions of a database) get `@<md5>` too.

Everything else is the source's name unchanged: a MedMNIST row's `data` is its `dataset`,
so the tables of MedMNIST, and of one COVID or ISIC setting, read as before. Pure Python
over column lists: `medaug results query` adds the column to its `results` table without
pandas, and `methods.annotate` builds contexts on it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

FOLDER = "folder"
HASH_CHARS = 8
#: Options a source leaves out of `data_options` at their default (`DataOption.omit_default`
#: in medaug/data/sources.py; a test checks this table against it: the analysis imports no torch).
OMITTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "covid19-radiography": {"lung_crop": True},
    "covid19-radiography-4class": {"lung_crop": True},
}
UNSET = "unset"  # an option one row records and another does not (rows from before the option existed)


def _options(raw: object) -> dict[str, Any]:
    """A row's data options as a dict: {} when null, {"data_options": text} when not a JSON object."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    try:
        value = json.loads(str(raw))
    except json.JSONDecodeError:
        return {"data_options": str(raw)}
    if value is None:
        return {}
    return dict(value) if isinstance(value, dict) else {"data_options": str(raw)}


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _folder_name(root: object) -> str:
    name = PurePosixPath(str(root).replace("\\", "/")).name if root is not None else ""
    return f"{FOLDER}:{name}" if name not in ("", ".", "..") else FOLDER


def _md5(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        return None
    return str(value)


def data_labels(datasets: Sequence[object], sizes: Sequence[object], data_options: Sequence[object],
                md5s: Sequence[object]) -> list[str]:
    """One `data` label per row (see the module docstring), from the rows' dataset, size,
    data_options (canonical JSON) and dataset_md5 columns."""
    n = len(datasets)
    names = ["" if d is None else str(d) for d in datasets]
    raw_opts = [_text(_options(o)) for o in data_options]
    hashes = [_md5(m) for m in md5s]

    # a row without an md5 (failed before its data was read) takes the one md5 of its exact options
    known: dict[tuple, set[str]] = defaultdict(set)
    for i in range(n):
        if hashes[i] is not None:
            known[(names[i], str(sizes[i]), raw_opts[i])].add(hashes[i])
    for i in range(n):
        found = known.get((names[i], str(sizes[i]), raw_opts[i]), set())
        if hashes[i] is None and len(found) == 1:
            hashes[i] = next(iter(found))

    bases: list[str] = []
    options: list[dict[str, Any]] = []
    for i in range(n):
        opts = {**OMITTED_DEFAULTS.get(names[i], {}), **_options(data_options[i])}
        if names[i] == FOLDER:
            base = _folder_name(opts.pop("root", "."))
            if hashes[i] is not None:
                base += f"@{hashes[i][:HASH_CHARS]}"
        else:
            base = names[i]
        bases.append(base)
        options.append(opts)

    # two copies of one (non-folder) source at one size and options: told apart by their md5
    copies: dict[tuple, set[str]] = defaultdict(set)
    for i in range(n):
        if names[i] != FOLDER and hashes[i] is not None:
            copies[(names[i], str(sizes[i]), _text(options[i]))].add(hashes[i])
    for i in range(n):
        if names[i] != FOLDER and hashes[i] is not None \
                and len(copies[(names[i], str(sizes[i]), _text(options[i]))]) > 1:
            bases[i] += f"@{hashes[i][:HASH_CHARS]}"

    # the options that differ within one source (or tree) are said
    values: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    members: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        members[bases[i]].append(i)
    for base, rows in members.items():
        keys = set().union(*(options[i] for i in rows))
        for key in keys:
            for i in rows:
                values[base][key].add(_text(options[i][key]) if key in options[i] else UNSET)
    labels = []
    for i in range(n):
        varying = sorted(k for k, v in values[bases[i]].items() if len(v) > 1)
        shown = [f"{k}={_text(options[i][k]) if k in options[i] else UNSET}" for k in varying]
        labels.append(" · ".join([bases[i], *shown]))
    return labels


def eval_data_labels(datasets: Sequence[object], train_hashes: Sequence[object], row_train_hashes: Sequence[object],
                     row_data: Sequence[str]) -> list[str]:
    """The `data` label of generator-evaluation rows, which record the real train split the
    generator learnt (`train_hash`) but neither data options nor md5: the label of the
    classifier rows trained on that very split, when they agree on one; else the dataset,
    and for a class-folder tree `folder (train <8 characters of train_hash>)`, so two
    trees' fits are never one point."""
    by_hash: dict[str, set[str]] = defaultdict(set)
    for h, d in zip(row_train_hashes, row_data):
        if _md5(h) is not None:
            by_hash[str(h)].add(d)
    labels = []
    for ds, h in zip(datasets, train_hashes):
        h = _md5(h)
        found = by_hash.get(h, set()) if h is not None else set()
        if len(found) == 1:
            labels.append(next(iter(found)))
        elif str(ds) == FOLDER and h is not None:
            labels.append(f"{FOLDER} (train {h[:HASH_CHARS]})")
        else:
            labels.append("" if ds is None else str(ds))
    return labels
