"""booktabs tables for a paper, with every piece of user text escaped.

Cells are plain strings (escaped here) or :class:`TeX` strings (trusted LaTeX the report built
itself, such as ``$\\pm$``). The output needs ``\\usepackage{booktabs}`` and nothing else.
"""

from __future__ import annotations

import re
from typing import Sequence

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
