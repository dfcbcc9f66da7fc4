"""booktabs tables for a paper, with every piece of user text escaped: ``rascal report --latex``.

Cells are plain strings (escaped here) or :class:`TeX` strings (trusted LaTeX built here, such
as ``$\\pm$``). The output needs ``\\usepackage{booktabs}`` and nothing else.
:func:`write_report_tables` writes the report's tables (:mod:`rascal_geom.tables`) as ``.tex``
files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from rascal_geom.display import rounded
from rascal_geom.stats import Difference, Summary
from rascal_geom.tables import lacks_interval
from rascal_train.files import atomic_write_text

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
}
_SPECIAL_RE = re.compile("|".join(re.escape(k) for k in _SPECIAL))


class TeX(str):
    """A string that is already LaTeX and is inserted as is."""


def escape(text: object) -> TeX:
    """``text`` as literal LaTeX text (``& % $ # _ { } ~ ^ \\ < >`` escaped)."""
    if isinstance(text, TeX):
        return text
    return TeX(_SPECIAL_RE.sub(lambda m: _SPECIAL[m.group(0)], str(text)))


def booktabs_table(header: Sequence[object], rows: Sequence[Sequence[object]], caption: str = "",
                   label: str = "", align: str | None = None) -> str:
    """A ``table`` environment with a booktabs ``tabular``.

    Parameters
    ----------
    header : sequence of str or TeX, length n_cols
    rows : sequence of rows, each of length n_cols
    caption, label : str
        Caption text (escaped) and ``\\label`` key (characters outside ``[A-Za-z0-9:._-]``
        replaced by ``-``).
    align : str, optional
        Column spec such as ``"lrr"``; default ``l`` then ``r`` for every other column.

    Returns
    -------
    str
    """
    ncols = len(header)
    align = align or "l" + "r" * (ncols - 1)
    if len(align) != ncols:
        raise ValueError(f"align {align!r} has {len(align)} columns, header has {ncols}")
    for i, row in enumerate(rows):
        if len(row) != ncols:
            raise ValueError(f"row {i} has {len(row)} cells, header has {ncols}")

    def line(cells: Sequence[object]) -> str:
        return " & ".join(escape(c) for c in cells) + r" \\"

    out = [r"\begin{table}[t]", r"\centering"]
    if caption:
        out.append(r"\caption{" + escape(caption) + "}")
    if label:
        out.append(r"\label{" + re.sub(r"[^A-Za-z0-9:._-]", "-", label) + "}")
    out += [r"\begin{tabular}{" + align + "}", r"\toprule", line(header), r"\midrule"]
    out += [line(row) for row in rows]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def _number(text: str) -> str:
    """A number from :func:`~rascal_geom.display.rounded` for math mode (``-`` for its minus)."""
    return text.replace("\u2212", "-")


def _summary(s: Summary | None, size: int, bold: bool = False) -> TeX:
    """Mean ± std rounded to the std's first significant digit; n only where it is not the
    group's (the header states that)."""
    if s is None:
        return TeX("--")
    spread = s.std if s.n > 1 else None
    body = _number(rounded(s.mean, spread))
    if s.n > 1:
        body += rf" \pm {_number(rounded(s.std, spread))}"
    cell = rf"$\mathbf{{{body}}}$" if bold else f"${body}$"
    return TeX(cell + (f" ($n={s.n}$)" if s.n != size else ""))


def _difference(d: Difference | None) -> TeX:
    if d is None:
        return TeX("--")
    if not d.has_interval:
        return TeX(f"${_number(rounded(d.delta, None, sign=True))}$")
    half = (d.high - d.low) / 2
    mark = "" if d.distinguishable else r"$^{\circ}$"
    low, high = (_number(rounded(v, half, sign=True)) for v in (d.low, d.high))
    return TeX(f"${_number(rounded(d.delta, half, sign=True))}$ [${low}$, ${high}$]{mark}")


def write_report_tables(names: Sequence[str], baseline: int, headline: list[dict],
                        geometry: list[dict], weights: list[dict], config: list[dict],
                        latex_dir: Path, retrieval: list[dict] = ()) -> list[Path]:
    """Write a report's tables: ``headline``, ``geometry``, ``retrieval``, ``weights``, ``config``.

    Parameters
    ----------
    names : sequence of str
        The run groups, in column order.
    baseline : int
        Index of the group the differences are taken from.
    headline, geometry : list of dict
        Rows of :func:`rascal_geom.tables.headline_table` and
        :func:`~rascal_geom.tables.geometry_table`; no ``geometry.tex`` when empty.
    retrieval : list of dict
        Rows of :func:`~rascal_geom.tables.retrieval_table`; no ``retrieval.tex`` when empty.
    weights : list of dict
        The RASCAL groups' weight histograms (``group``, ``stats``, ``recorded``); no
        ``weights.tex`` when empty.
    config : list of dict
        Rows of :func:`rascal_geom.tables.config_rows`.
    latex_dir : Path

    Returns
    -------
    list of Path
        The files written.
    """
    others = [i for i in range(len(names)) if i != baseline]

    def table(rows: list[dict], caption: str, label: str) -> str:
        header = ["metric"] + [TeX(escape(n) + f" ($n={k}$)") for n, k in zip(names, sizes)]
        header += [TeX(r"$\Delta$ " + escape(names[i])) for i in others]
        body = [[r["label"]] + [_summary(s, k, i == r["best"])
                                for i, (s, k) in enumerate(zip(r["summaries"], sizes))]
                + [_difference(r["differences"][i]) for i in others] for r in rows]
        return booktabs_table(header, body, caption=caption, label=label)

    sizes = (headline or geometry or [{"sizes": [0] * len(names)}])[0]["sizes"]
    note = (f"Mean and std over seeds (n per method in the header), each rounded to the first "
            f"significant digit of its std (3 decimals without one); differences from the baseline "
            f"{names[baseline]} with 95% intervals (paired t over matching seeds, else Welch t), "
            f"rounded to the interval's half-width; a circle marks an interval that contains 0. "
            f"Bold: "
            f"the best value of a row where its interval against every other method excludes 0.")

    def caption(what: str, rows: list[dict]) -> str:
        no_ci = (" Differences without an interval: a side has one run." if lacks_interval(rows)
                 else "")
        return f"{what} {note}{no_ci}"

    written = [atomic_write_text(latex_dir / "headline.tex", table(
        headline, caption("Headline metrics.", headline), "tab:rascal-headline"))]
    if geometry:
        written.append(atomic_write_text(latex_dir / "geometry.tex", table(
            geometry, caption("Embedding geometry.", geometry), "tab:rascal-geometry")))
    if retrieval:
        written.append(atomic_write_text(latex_dir / "retrieval.tex", table(
            retrieval, caption("Retrieval, neural collapse, spectrum and probe calibration.",
                               retrieval),
            "tab:rascal-retrieval")))
    if weights:
        rows = [[w["group"], f"{w['stats']['mean']:.3f}", f"{w['stats']['std']:.3f}",
                 f"{w['stats']['share_ge_0.9']:.1%}", f"{w['stats']['share_ge_0.7']:.1%}",
                 f"{w['stats']['share_lt_0.3']:.1%}"] for w in weights]
        recorded = "; ".join(f"{w['group']}: {w['recorded']}" for w in weights)
        written.append(atomic_write_text(latex_dir / "weights.tex", booktabs_table(
            ["run group", "mean", "std", TeX(r"$\geq 0.9$"), TeX(r"$\geq 0.7$"), TeX(r"$< 0.3$")],
            rows, caption="Logged weight histograms of the RASCAL runs at the last logged epoch "
                          "(mean and std from bin centres of 20 bins; shares exact). Recorded: "
                          + recorded + ".", label="tab:rascal-weights")))
    written.append(atomic_write_text(latex_dir / "config.tex", booktabs_table(
        ["setting"] + list(names), [[r["key"]] + r["cells"] for r in config],
        caption="Configurations compared (differing settings first).", label="tab:rascal-config",
        align="l" * (len(names) + 1))))
    return written
