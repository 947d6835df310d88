"""A table of cells and its renderings: Markdown, LaTeX (booktabs), CSV, HTML.

A `Cell` carries numbers (a `Summary`: mean, std, n) or plain text, plus whether it
is the best of its row (bold, as seed 000 marks the best result per dataset) and a
significance mark against the row's baseline ("up"/"down": significantly better /
worse after Holm), a dagger when that mark rests on fewer than 5 matched seeds
(`fragile`), and the comparison's minimum detectable effect (`detectable`, shown as
"[MDE x]"). Renderers format the numbers; the numbers stay available
(`Table.to_frame`) so tests and users check values, not strings.
"""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field

import pandas as pd

from medaug.analysis.stats import FRAGILE_MARK, Summary, format_detectable

MARKS = {"up": "↑", "down": "↓", "": ""}
LATEX_MARKS = {"up": r"$^{\uparrow}$", "down": r"$^{\downarrow}$", "": ""}


@dataclass
class Cell:
    """One table cell: numbers (`value`, shown x `scale`) or `text`; `bold`; `mark` in {"", "up", "down"}."""

    value: Summary | None = None
    text: str | None = None
    bold: bool = False
    mark: str = ""
    scale: float = 100.0
    digits: int = 2
    detail: str = ""  # e.g. the comparison behind a mark, for CSV/long form
    fragile: bool = False  # the mark (or claim) rests on fewer than 5 matched seeds: shown as a dagger
    detectable: float | None = None  # the comparison's minimum detectable effect, shown x `scale`

    def marks(self, arrows: dict[str, str] | None = None) -> str:
        """What follows the number: the arrow, the fragile dagger, the detectable effect."""
        text = (MARKS if arrows is None else arrows).get(self.mark, "") + (FRAGILE_MARK if self.fragile else "")
        if self.detectable is not None:
            text += f" [MDE {format_detectable(self.detectable, self.scale)}]"
        return text

    def plain(self, pm: str = "±") -> str:
        if self.value is None:
            return self.text if self.text is not None else "—"
        v = self.value
        if v.n == 0 or math.isnan(v.mean):
            return "—"
        mean = f"{v.mean * self.scale:.{self.digits}f}"
        if v.n > 1 and not math.isnan(v.std):
            return f"{mean} {pm} {v.std * self.scale:.{self.digits}f} (n={v.n})"
        return f"{mean} (n={v.n})"


@dataclass
class Table:
    """A titled grid: `header` names the columns after the row-label column; rows are (label, cells)."""

    key: str
    title: str
    row_header: str
    header: list[str]
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for label, cells in self.rows:
            if len(cells) != len(self.header):
                raise ValueError(f"table {self.key}: row {label!r} has {len(cells)} cells, header {len(self.header)}")

    @property
    def empty(self) -> bool:
        return not self.rows

    def files(self) -> dict[str, str]:
        """The table's file forms by extension (what reports and analysis scripts write)."""
        return {"md": self.to_markdown(), "tex": self.to_latex(), "csv": self.to_csv()}

    def cell(self, row: str, column: str) -> Cell:
        """The cell at (row label, column header)."""
        j = self.header.index(column)
        for label, cells in self.rows:
            if label == row:
                return cells[j]
        raise KeyError(f"table {self.key}: no row {row!r}")

    # --- renderings -------------------------------------------------------------------------

    def to_markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", r"\|").replace("\n", " ")

        def fmt(c: Cell) -> str:
            s = esc(c.plain() + c.marks())
            return f"**{s}**" if c.bold else s

        lines = [f"**{esc(self.title)}**", ""]
        if self.rows:  # an empty table is its title and notes only
            lines.append("| " + " | ".join(esc(h) for h in [self.row_header, *self.header]) + " |")
            lines.append("|" + "---|" * (len(self.header) + 1))
            for label, cells in self.rows:
                lines.append("| " + " | ".join([esc(label), *(fmt(c) for c in cells)]) + " |")
        lines.extend([""] + [f"- {esc(n)}" for n in self.notes] if self.notes else [])
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """A booktabs `table` environment (needs \\usepackage{booktabs})."""

        def fmt(c: Cell) -> str:
            s = latex_escape(c.plain(pm="\x00")).replace("\x00", r"$\pm$") + LATEX_MARKS.get(c.mark, "") + \
                latex_escape(c.marks({}))
            return rf"\textbf{{{s}}}" if c.bold else s

        if not self.rows:
            return "".join(f"% {line}\n" for line in [f"{self.title}: no rows", *self.notes])

        out = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{latex_escape(self.title)}}}",
               rf"\label{{tab:{self.key}}}", r"\begin{tabular}{l" + "r" * len(self.header) + "}", r"\toprule",
               " & ".join(latex_escape(h) for h in [self.row_header, *self.header]) + r" \\", r"\midrule"]
        for label, cells in self.rows:
            out.append(" & ".join([latex_escape(label), *(fmt(c) for c in cells)]) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if self.notes:
            out.append(r"\par\smallskip\footnotesize " + r" \\ ".join(latex_escape(n) for n in self.notes))
        out.append(r"\end{table}")
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        """The grid as shown: each cell's text with its mark (bold is not encoded; see `to_frame`)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([self.row_header, *self.header])
        for label, cells in self.rows:
            w.writerow([label, *(c.plain() + c.marks() for c in cells)])
        return buf.getvalue()

    def to_frame(self) -> pd.DataFrame:
        """Long form, one line per cell: row, column, mean, std, n, text, bold, mark, fragile, detectable, detail."""
        recs = []
        for label, cells in self.rows:
            for h, c in zip(self.header, cells):
                v = c.value
                recs.append({
                    "table": self.key, "row": label, "column": h,
                    "mean": v.mean if v else math.nan, "std": v.std if v else math.nan, "n": v.n if v else 0,
                    "text": c.plain(), "bold": c.bold, "mark": c.mark, "fragile": c.fragile,
                    "detectable": c.detectable if c.detectable is not None else math.nan, "detail": c.detail,
                })
        return pd.DataFrame.from_records(recs, columns=["table", "row", "column", "mean", "std", "n", "text", "bold",
                                                        "mark", "fragile", "detectable", "detail"])

    def to_html(self) -> str:
        def fmt(c: Cell) -> str:
            s = html.escape(c.plain() + c.marks())
            attrs = f' title="{html.escape(c.detail)}"' if c.detail else ""
            attrs += ' class="num"' if c.value is not None else ' class="l"'
            inner = f"<strong>{s}</strong>" if c.bold else s
            return f"<td{attrs}>{inner}</td>"

        if not self.rows:
            out = [f'<div class="emptytable" id="table-{html.escape(self.key)}"><p class="caption">'
                   f"{html.escape(self.title)}</p>"]
            out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul></div>")
            return "\n".join(out)
        out = [f'<table class="results" id="table-{html.escape(self.key)}">',
               f"<caption>{html.escape(self.title)}</caption>", "<thead><tr>"]
        out += [f"<th>{html.escape(h)}</th>" for h in [self.row_header, *self.header]]
        out.append("</tr></thead><tbody>")
        for label, cells in self.rows:
            out.append(f"<tr><th scope=\"row\">{html.escape(label)}</th>" + "".join(fmt(c) for c in cells) + "</tr>")
        out.append("</tbody></table>")
        if self.notes:
            out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(out)


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  "±": r"$\pm$", "·": r"$\cdot$", "—": "---", "–": "--", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
                  "≥": r"$\geq$", "≤": r"$\leq$", "−": "-", "†": r"$^{\dagger}$", "∞": r"$\infty$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
