"""booktabs output: escaped text, balanced structure, rules in order, consistent columns."""

import re

import pytest

from rascal_geom.latex import TeX, booktabs_table, escape
from rascal_geom.report import render_report
from test_report import EVIL, write_run


def _strip_escapes(tex: str) -> str:
    return re.sub(r"\\[{}&%$#_]", "", tex)


def check_structure(tex: str) -> None:
    """What a LaTeX run would reject first: unbalanced braces/$/environments, misplaced rules,
    ragged rows."""
    body = _strip_escapes(tex)
    depth = 0
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "closing brace without an opening one"
    assert depth == 0, "unbalanced braces"
    assert body.count("$") % 2 == 0, "unbalanced math"
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", tex):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env, (f"\\end{{{env}}} does not close the open "
                                                  "environment")
    assert not stack, f"unclosed environments {stack}"
    assert tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == 1
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    assert r"\hline" not in tex
    ncols = len(re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1))
    rows = tex.split(r"\toprule")[1].split(r"\bottomrule")[0].replace(r"\midrule", "")
    for row in filter(str.strip, rows.split(r"\\")):
        assert _strip_escapes(row).count("&") == ncols - 1, (f"row {row!r} does not have "
                                                             f"{ncols} cells")


def test_escape_every_special_character():
    assert escape("a_b & 50% $x$ #1 {y} ~ ^ \\ <s>") == (
        r"a\_b \& 50\% \$x\$ \#1 \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{} "
        r"\textless{}s\textgreater{}")
    assert escape(TeX(r"$\pm$")) == r"$\pm$"


def test_booktabs_table_structure_and_escaping():
    tex = booktabs_table(["name", TeX(r"$\Delta$")], [["x_1 & y", "0.5"], [EVIL, TeX(r"$+0.1$")]],
                         caption="50% of {runs}", label="tab:a b")
    check_structure(tex)
    assert r"x\_1 \& y & 0.5 \\" in tex
    assert r"\textless{}script\textgreater{}" in tex and "<script>" not in tex
    assert r"\caption{50\% of \{runs\}}" in tex and r"\label{tab:a-b}" in tex
    with pytest.raises(ValueError, match="cells"):
        booktabs_table(["a", "b"], [["only one"]])


def test_structure_check_rejects_broken_tables():
    good = booktabs_table(["a", "b"], [["1", "2"]])
    check_structure(good)
    for broken in (good.replace(r"\bottomrule", ""), good.replace("1 & 2", "1 & 2 & 3"),
                   good.replace(r"\end{tabular}", ""), good + "{", good.replace(r"\\", "$ \\", 1)):
        with pytest.raises(AssertionError):
            check_structure(broken)


def test_report_latex_files(tmp_path):
    runs = [write_run(tmp_path, f"sup_con_s{s}", "supcon", s, umap=False) for s in (0, 1)]
    runs += [write_run(tmp_path, f"ras_cal_s{s}", "rascal", s, offset=0.1, umap=False)
             for s in (0, 1)]
    # A display name given by the user (a sweep file's display_names:) is user text: escaped.
    render_report(runs, baseline="supcon", out_html=tmp_path / "r.html", latex_dir=tmp_path / "tex",
                  progress=False, names={"rascal": "ras_cal"})
    files = {p.name: p.read_text() for p in (tmp_path / "tex").iterdir()}
    assert set(files) == {"headline.tex", "geometry.tex", "weights.tex", "config.tex"}
    for tex in files.values():
        check_structure(tex)
    head = files["headline.tex"]
    assert (r"ras\_cal ($n=2$)" in head and r"$\Delta$ ras\_cal" in head
            and r"SupCon ($n=2$)" in head)
    # n is stated once per method in the header, never in a cell where it is the method's n.
    body = head.split(r"\midrule")[1]
    assert r"\pm" in body and "$n=" not in body and "loss=" not in head
    # ras_cal is 0.1 above sup_con with seed noise of 0.01: its intervals separate it, so bold.
    assert r"$\mathbf{" in body
    assert r"seeds & 0, 1 & 0, 1 \\" in files["config.tex"]
    assert r"$\geq 0.9$" in files["weights.tex"]
