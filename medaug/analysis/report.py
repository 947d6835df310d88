"""The analysis report: one self-contained `index.html` and its Markdown twin `report.md`.

`index.html` needs nothing beside it (figures are embedded as base64 data URIs, no
script, no external style or font), so it can be mailed or archived as one file.
`report.md` shows the same content with the figures as files in `figures/`; each
table is also written as Markdown, LaTeX (booktabs), CSV (as shown) and a long CSV
of the numbers under `tables/`.

Sections: summary; tables (seed 000 Tables 2-5, seed 003 rates, seed 002 per-class);
figures; comparisons that cannot be made and why; study configuration (the spec
columns); datasets (version, md5, split hashes); software versions (of the runs and
of this analysis); failed runs and their errors; how the statistics were done.

Everything is computed in memory first: bad input raises `MedaugError` before any
file is written, and each file is then written whole (`medaug.store.atomic`).
"""

from __future__ import annotations

import base64
import html
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from medaug.analysis import plots
from medaug.analysis.load import Results, load_results
from medaug.analysis.methods import slug
from medaug.analysis.render import Table
from medaug.analysis.stats import StatsOptions, power_text
from medaug.analysis.tables import Grid, best_methods, build_tables, gains, impossible_comparisons
from medaug.analysis.timing import generator_timing_table, timing_table
from medaug.errors import MedaugError
from medaug.store.atomic import atomic_write, check_writable

SPEC_COLUMNS = ("dataset", "size", "classifier", "augmentation", "wrs", "synthetic", "optimizer", "lr", "momentum",
                "weight_decay", "schedule", "milestones", "epochs", "batch_size", "seed", "select_metric")
ANALYSIS_PACKAGES = ("medaug", "pandas", "pyarrow", "numpy", "scipy", "matplotlib", "zarr", "duckdb")


@dataclass
class Report:
    """What `build_report` wrote and what it had to say."""

    out_dir: Path
    index_html: Path
    report_md: Path
    tables: dict[str, Table]
    figures: list[plots.RenderedFigure]
    messages: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    n_runs: int = 0
    n_failed: int = 0


def build_report(paths: Sequence[str | Path] | str | Path, out_dir: str | Path, *, title: str | None = None,
                 options: StatsOptions | None = None, positive: Mapping[str, int | str] | None = None,
                 geometric: str | None = None, generator_runs: Sequence[str | Path] = (),
                 synthetic: Sequence[str] = (), per_class: str = "best", max_montages: int = 8) -> Report:
    """Analyse the results under `paths` and write the report into `out_dir`.

    `generator_runs`: generator run folders (or loss-table files) whose loss curves to draw;
    `synthetic`: "STORE.zarr#GROUP" sets to show as montages (the sets named by the rows
    are added when their store exists here); `positive`: dataset -> positive class for
    the seed-003 rates; `geometric`: which geometric pipeline "GDA" means when there are several.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MedaugError(f"{out}: exists and is not a folder; expected a folder for the report")
    check_writable(out / "index.html", what="report folder")  # read-only or under a file: before any figure
    opts = options or StatsOptions()
    if per_class not in ("best", "all", "none"):
        raise MedaugError(f"per_class {per_class!r}: expected best, all or none")
    res = load_results(paths)
    for run in generator_runs:
        if not Path(run).exists():
            raise MedaugError(f"{run}: no such generator run folder or loss table")
    for ref in synthetic:
        if _locate(plots.parse_synthetic_ref(ref)[0], res.sources) is None:
            raise MedaugError(f"{ref}: no such Zarr store")
    tables = build_tables(res, opts, positive=positive, geometric=geometric, per_class=per_class)
    timing = timing_table(res.rows, res.sources)  # estimate.json of a sweep against wall_seconds
    if timing is not None:
        tables[timing.key] = timing
    gen_timing = generator_timing_table(res.generator_eval, res.sources)  # a generator study's fits and evals
    if gen_timing is not None:
        tables[gen_timing.key] = gen_timing
    grid = Grid(res)
    messages = list(res.messages)
    figures = _figures(res, grid, opts, generator_runs, synthetic, max_montages, messages)
    impossible = impossible_comparisons(grid)
    for ds, g in res.rows.groupby("data"):  # one source's trees or options, apart (analysis/data_label.py)
        if (g["status"] != "finished").all():
            impossible.append(f"{ds}: none of its {len(g)} run(s) finished: nothing to compare (see Failed runs)")
    title = title or _default_title(res)

    md = _markdown(res, title, tables, figures, impossible, messages, opts)
    page = _html(res, title, tables, figures, impossible, messages, opts)

    files = _publish(out, _report_files(figures, tables, md, page))
    return Report(out, out / "index.html", out / "report.md", tables, figures, messages, files,
                  n_runs=len(res.rows), n_failed=len(res.failed))


def _report_files(figures: list, tables: Mapping[str, Table], md: str, page: str) -> dict[str, bytes]:
    """Every file of the report by its path relative to the report folder."""
    files: dict[str, bytes] = {}
    for fig in figures:
        for ext in ("png", "svg"):
            files[f"figures/{fig.name}.{ext}"] = getattr(fig, ext)
    for key, t in tables.items():
        for ext, text in t.files().items():
            files[f"tables/{key}.{ext}"] = text.encode()
        files[f"tables/{key}_long.csv"] = t.to_frame().to_csv(index=False).encode()
    files["report.md"] = md.encode()
    files["index.html"] = page.encode()
    return files


def _publish(out: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write the report whole or not at all: every file goes into a staging folder beside
    `out` first (a full disk stops there, and `out` is untouched), then each is renamed
    into place (same file system: renames need no space)."""
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for rel, data in files.items():
            atomic_write(stage / rel, lambda tmp, data=data: tmp.write_bytes(data))
        out.mkdir(exist_ok=True)
        for rel in files:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [out / rel for rel in files]


def _default_title(res: Results) -> str:
    studies = sorted({s for s in res.rows["study"].dropna().astype(str) if s})
    return "medaug report" + (f": {', '.join(studies)}" if studies else "")


# ---------------------------------------------------------------------------------------------
# figures

def _figures(res: Results, grid: Grid, opts: StatsOptions, generator_runs: Sequence[str | Path],
             synthetic: Sequence[str], max_montages: int, messages: list[str]) -> list[plots.RenderedFigure]:
    figs: list[plots.RenderedFigure] = []

    def add(fig, name: str, caption: str) -> None:
        if fig is not None:
            figs.append(plots.render(fig, name, caption))

    for ctx, method in best_methods(grid).items():
        rows = grid.rows(ctx, method)
        add(plots.confusion_figure(rows, f"{ctx}: {method}"), f"confusion_{slug(ctx)}",
            f"Confusion matrix of the best configuration for {ctx} ({method}), summed over its seeds "
            "(seed 000 Figs. 29-44).")
        add(plots.curves_figure(rows, f"{ctx}: {method}"), f"curves_{slug(ctx)}",
            f"Train loss, validation ACC and AUC per epoch of the best configuration for {ctx} ({method}).")
    add(plots.class_distribution_figure(res.finished if not res.finished.empty else res.rows), "class_distribution",
        "Class counts of each dataset's test split (seed 000 Figs. 10-17).")
    acc_gains = gains(grid, opts)
    add(plots.gain_heatmap_figure(acc_gains), "gain_heatmap", " ".join(filter(None, (
        "Mean test-ACC gain over the no-GDA/WRS baseline per dataset and method, paired over matched seeds; "
        "↑/↓: significant after Holm over the whole heatmap.", plots.gain_heatmap_legend(acc_gains)))))
    utility = _utility(grid, acc_gains)
    add(plots.fidelity_utility_figure(res.generator_eval, utility), "fidelity_utility",
        "Generator fidelity (FID above the real-vs-real floor, precision/recall) beside utility (downstream ACC "
        "gain, TSTR/TRTR): low FID need not mean useful augmentation. Rank correlation across (dataset, "
        "generator) points: " + (plots.fidelity_utility_text(res.generator_eval, utility) or "none."))
    if res.generator_eval is None:
        messages.append("no generator-evaluation rows (OUT/generator-eval/*.parquet): fidelity-vs-utility figure "
                        "skipped")

    for run in generator_runs:
        tables = plots.find_loss_tables(run)
        if not tables:
            messages.append(f"{run}: no loss table (*loss*/*log*/*history*/*metrics* .csv/.parquet/.jsonl) found")
        for t in tables:
            df = plots.read_loss_table(t)
            fig = plots.generator_loss_figure(df, f"{Path(run).name}: {t.name}") if df is not None else None
            if fig is None:
                messages.append(f"{t}: no numeric loss columns to plot")
            add(fig, f"generator_losses_{slug(Path(run).name)}_{slug(t.stem)}",
                f"Generator training losses from {t.name} (seed 000 Fig. 27).")

    refs = list(dict.fromkeys(list(synthetic) + sorted(set(res.rows["synthetic"].dropna().astype(str)))))
    shown = 0
    for ref in refs:
        if shown >= max_montages:
            messages.append(f"{len(refs) - shown} more synthetic set(s) not shown (max_montages={max_montages})")
            break
        store, group = plots.parse_synthetic_ref(ref)
        found = _locate(store, res.sources)
        if found is None:  # a set named by the rows but not copied here: nothing to show
            continue
        try:
            fig = plots.montage_figure(found, group)
        except MedaugError as exc:
            messages.append(f"montage of {ref} skipped: {exc}")
            continue
        add(fig, f"montage_{slug(store.stem)}_{slug(group)}",
            f"Synthetic images per class from {store.name}#{group} (seed 000 Fig. 28).")
        shown += 1
    return figs


def _locate(store: Path, sources: Sequence[Path]) -> Path | None:
    if store.is_absolute():
        return store if store.exists() else None
    for base in [Path.cwd(), *sources, *(s.parent for s in sources)]:
        if (base / store).exists():
            return base / store
    return None


def _utility(grid: Grid, acc_gains) -> pd.DataFrame:
    """Downstream ACC gain of each pure generator method (no WRS, no geometric) per dataset."""
    recs = []
    for g in acc_gains:
        rows = grid.rows(g.context, g.method)
        if rows.empty:
            continue
        r = rows.iloc[0]
        if r["generator"] is None or r["wrs"] or r["augmentation"] != "none" or g.comparison.n == 0:
            continue
        recs.append({"dataset": r["data"], "generator": r["generator"], "gain_pp": g.comparison.mean_diff * 100,
                     "verdict": g.comparison.verdict})
    if not recs:
        return pd.DataFrame(columns=["dataset", "generator", "gain_pp", "verdict"])
    df = pd.DataFrame(recs)
    return df.groupby(["dataset", "generator"]).agg(
        gain_pp=("gain_pp", "mean"), verdict=("verdict", lambda v: "improved" if (v == "improved").all() else "")
    ).reset_index()


# ---------------------------------------------------------------------------------------------
# facts about the runs

def _values(series: pd.Series) -> str:
    vals = []
    for v in series.dropna():
        if hasattr(v, "tolist") and not isinstance(v, str):
            v = v.tolist()
        vals.append(str(v))
    def key(s: str) -> tuple:
        try:
            return (0, float(s), s)
        except ValueError:
            return (1, 0.0, s)

    uniq = sorted(set(vals), key=key)
    if len(uniq) > 12:
        return ", ".join(uniq[:12]) + f", … ({len(uniq)} values)"
    return ", ".join(uniq) if uniq else "—"


def configuration(res: Results) -> list[tuple[str, str]]:
    rows = res.rows
    out = [("study", _values(rows["study"])), ("runs", f"{len(rows)} ({_status_counts(res)}) from "
                                                        f"{res.n_files} file(s)")]
    for col in SPEC_COLUMNS:
        if col == "synthetic":
            n = rows["synthetic"].notna().sum()
            out.append(("synthetic", f"{n} run(s) with a synthetic set; generators: {_values(rows['generator'])}; "
                                     f"strategies: {_values(rows['strategy'])}"))
        else:
            out.append((col, _values(rows[col])))
    out.append(("executor", _values(rows["executor"])))
    return out


def datasets_frame(res: Results) -> pd.DataFrame:
    cols = ["dataset", "size", "dataset_version", "dataset_md5", "train_hash", "val_hash", "test_hash", "task"]
    if "data" in res.rows and (res.rows["data"] != res.rows["dataset"]).any():
        cols = ["data", *cols]  # a source made several data sets (trees, options): the label the tables use
    df = res.rows[cols].copy()
    df["runs"] = 1
    return df.groupby(cols, dropna=False, sort=True).agg(runs=("runs", "sum")).reset_index()


def software(res: Results) -> list[tuple[str, str]]:
    rows = res.rows
    out = [(f"runs: {c.replace('_version', '')}", _values(rows[c]))
           for c in ("medaug_version", "torch_version", "medmnist_version")]
    out += [("runs: git commit", _values(rows["git_commit"])), ("runs: device", _values(rows["device"])),
            ("analysis: python", platform.python_version())]
    for pkg in ANALYSIS_PACKAGES:
        try:
            out.append((f"analysis: {pkg}", metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            out.append((f"analysis: {pkg}", "not installed"))
    return out


def failed_runs(res: Results) -> pd.DataFrame:
    f = res.failed
    cols = ["run_id", "context", "method", "seed", "status", "error"]
    return f[cols].reset_index(drop=True) if not f.empty else pd.DataFrame(columns=cols)


def statistics_text(opts: StatsOptions) -> list[str]:
    test = "paired t-test (scipy.stats.ttest_rel)" if opts.test == "t" else \
        "Wilcoxon signed-rank test (scipy.stats.wilcoxon)"
    return [
        "Each cell is the mean ± sample standard deviation (ddof = 1) over seeds, with the number of seeds n. "
        "Runs that repeat a (dataset, setting, method, seed) are averaged into one value per seed.",
        "Runs are compared only within a context: the same dataset and training setting (size, classifier, "
        "optimizer, lr, epochs, batch, ...). The baseline of a context is no geometric augmentation, no WRS, no "
        "synthetic set.",
        f"A method is compared with its baseline over matched seeds (the seeds both ran) by a two-sided {test}. "
        f"The p-values of one table (or of the heatmap) form one family and are Holm-corrected; alpha = "
        f"{opts.alpha:g}.",
        "'Improved' is claimed only when the corrected p-value is below alpha, the mean difference is positive, "
        "and at least 2 seeds are matched. A comparison with fewer matched seeds is shown but marked untestable.",
        f"Confidence intervals of the mean difference: percentile bootstrap over matched seeds, {opts.n_boot} "
        f"resamples, RNG seed {opts.boot_seed}, {opts.confidence * 100:g}% level.",
        *power_text(opts),
        "ACC and AUC follow MedMNIST's evaluator semantics as recorded in the rows; values are shown in %.",
    ]


# ---------------------------------------------------------------------------------------------
# Markdown

def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def esc(x: object) -> str:
        return str(x).replace("|", r"\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _first_line(text: object, limit: int = 200) -> str:
    s = str(text or "").strip().splitlines()
    line = s[-1] if s and s[0].startswith("Traceback") else (s[0] if s else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _status_counts(res: Results) -> str:
    counts = res.rows["status"].fillna("unknown").value_counts()
    order = ["finished", "failed", "stopped"] + sorted(set(counts.index) - {"finished", "failed", "stopped"})
    return ", ".join(f"{int(counts.get(k, 0))} {k}" for k in order if k in counts or k in ("finished", "failed"))


def _summary_line(res: Results) -> str:
    fin = res.finished
    seeds = sorted({int(s) for s in fin["seed"].dropna()}) if not fin.empty else []
    return (f"{len(res.rows)} runs ({_status_counts(res)}) from {res.n_files} file(s) in "
            f"{', '.join(str(s) for s in res.sources)}; datasets: {', '.join(sorted(set(res.rows['data'])))}; "
            f"seeds: {', '.join(map(str, seeds)) or '—'}." + _generator_eval_line(res))


def _generator_eval_line(res: Results) -> str:
    ev = res.generator_eval
    if ev is None or ev.empty:
        return ""
    return (f" {len(ev)} generator evaluation(s) of {', '.join(sorted(set(ev['generator'].astype(str))))} on "
            f"{', '.join(sorted(set(ev['dataset'].astype(str))))}.")


def _markdown(res: Results, title: str, tables: dict[str, Table], figures: list[plots.RenderedFigure],
              impossible: list[str], messages: list[str], opts: StatsOptions) -> str:
    out = [f"# {title}", "", _summary_line(res), ""]
    out += ["## Tables", ""]
    for t in tables.values():
        out += [t.to_markdown(), ""]
    out += ["## Figures", ""]
    for f in figures:
        out += [f"![{f.caption}](figures/{f.name}.png)", "", f"*{f.caption}* ([SVG](figures/{f.name}.svg))", ""]
    out += ["## Comparisons that cannot be made", ""]
    out += [f"- {m}" for m in impossible] or ["None: every context has a baseline with at least 2 matched seeds."]
    out += ["", "## Study configuration", "", _md_table(["field", "values"], configuration(res))]
    ds = datasets_frame(res)
    out += ["## Datasets", "", _md_table(list(ds.columns), ds.astype(str).values.tolist())]
    out += ["## Software", "", _md_table(["package", "version(s)"], software(res))]
    fr = failed_runs(res)
    out += ["## Failed runs", "", f"{len(fr)} run(s) did not finish (failed, or stopped early by the scheduler).",
            ""]
    if len(fr):
        out.append(_md_table(["run_id", "context", "method", "seed", "status", "error"],
                             [[r.run_id, r.context, r.method, r.seed, r.status, _first_line(r.error)]
                              for r in fr.itertuples()]))
    out += ["## Statistics", ""] + [f"- {s}" for s in statistics_text(opts)]
    if messages:
        out += ["", "## Notes from the analysis", ""] + [f"- {m}" for m in messages]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}
th,td{border-top:1px solid #ddd;padding:.25rem .5rem;text-align:right;vertical-align:top}
th[scope=row],thead th,td.l{text-align:left}thead th{border-bottom:2px solid #444}
caption{caption-side:top;text-align:left;font-weight:600;padding-bottom:.3rem}
.tablewrap{overflow-x:auto}ul.notes{font-size:.8rem;color:#555}
p.caption{font-weight:600;font-size:.85rem;margin-bottom:0}
figure{margin:1rem 0;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.8rem;color:#444;max-width:40rem}nav li{display:inline;margin-right:1rem}
pre{white-space:pre-wrap;font-size:.75rem;background:#f6f6f6;padding:.5rem}
.summary{background:#f3f6fa;padding:.6rem;border-radius:4px}
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[object]], left: bool = True) -> str:
    cls = ' class="l"' if left else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{cls}>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html(res: Results, title: str, tables: dict[str, Table], figures: list[plots.RenderedFigure],
          impossible: list[str], messages: list[str], opts: StatsOptions) -> str:
    e = html.escape
    sections = [("tables", "Tables"), ("figures", "Figures"), ("impossible", "Comparisons that cannot be made"),
                ("configuration", "Study configuration"), ("datasets", "Datasets"), ("software", "Software"),
                ("failed", "Failed runs"), ("statistics", "Statistics")]
    if messages:
        sections.append(("notes", "Notes from the analysis"))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<link rel="icon" href="data:,">', f"<title>{e(title)}</title>", f"<style>{CSS}</style></head><body>",
             f"<h1>{e(title)}</h1>", f'<p class="summary">{e(_summary_line(res))}</p>',
             "<nav><ul>" + "".join(f'<li><a href="#{k}">{e(v)}</a></li>' for k, v in sections) + "</ul></nav>"]
    parts.append('<section id="tables"><h2>Tables</h2>')
    for t in tables.values():
        parts.append(f'<div class="tablewrap">{t.to_html()}</div>')
    parts.append('</section><section id="figures"><h2>Figures</h2>')
    for f in figures:
        data = base64.b64encode(f.png).decode("ascii")
        parts.append(f'<figure id="fig-{e(f.name)}"><img src="data:image/png;base64,{data}" alt="{e(f.caption)}">'
                     f"<figcaption>{e(f.caption)}</figcaption></figure>")
    if not figures:
        parts.append("<p>No figures: the results hold nothing to draw.</p>")
    parts.append('</section><section id="impossible"><h2>Comparisons that cannot be made</h2>')
    parts.append("<ul>" + "".join(f"<li>{e(m)}</li>" for m in impossible) + "</ul>" if impossible else
                 "<p>None: every context has a baseline with at least 2 matched seeds.</p>")
    parts.append('</section><section id="configuration"><h2>Study configuration</h2>')
    parts.append(_html_table(["field", "values"], configuration(res)))
    ds = datasets_frame(res)
    parts.append('</section><section id="datasets"><h2>Datasets</h2>')
    parts.append(_html_table(list(ds.columns), ds.astype(str).values.tolist()))
    parts.append('</section><section id="software"><h2>Software</h2>')
    parts.append(_html_table(["package", "version(s)"], software(res)))
    fr = failed_runs(res)
    parts.append(f'</section><section id="failed"><h2>Failed runs</h2><p>{len(fr)} run(s) did not finish '
                 "(failed, or stopped early by the scheduler).</p>")
    if len(fr):
        rows = "".join(
            f"<tr><td class=\"l\">{e(str(r.run_id))}</td><td class=\"l\">{e(str(r.context))}</td>"
            f"<td class=\"l\">{e(str(r.method))}</td><td>{e(str(r.seed))}</td><td class=\"l\">{e(str(r.status))}"
            f"</td><td class=\"l\"><details><summary>{e(_first_line(r.error))}</summary><pre>{e(str(r.error or ''))}"
            "</pre></details></td></tr>" for r in fr.itertuples())
        parts.append('<div class="tablewrap"><table><thead><tr><th>run_id</th><th>context</th><th>method</th>'
                     f"<th>seed</th><th>status</th><th>error</th></tr></thead><tbody>{rows}</tbody></table></div>")
    parts.append('</section><section id="statistics"><h2>Statistics</h2><ul>'
                 + "".join(f"<li>{e(s)}</li>" for s in statistics_text(opts)) + "</ul></section>")
    if messages:
        parts.append('<section id="notes"><h2>Notes from the analysis</h2><ul>'
                     + "".join(f"<li>{e(m)}</li>" for m in messages) + "</ul></section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["Report", "build_report", "configuration", "datasets_frame", "failed_runs", "software",
           "statistics_text"]
