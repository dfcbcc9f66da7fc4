"""Self-contained HTML structure reports (and booktabs tables) from runs and analysis files.

:func:`render_report` compares run groups (runs that differ only in seed) against a baseline;
:func:`render_analysis` is the single-checkpoint page ``rascal analyze`` writes. Both fill the
same template: inline CSS, inline SVG figures (also saved as SVG and PDF beside the page),
tables sortable by a few lines of inline script, no network resource. All user text (run and
class names, paths, config values) goes through Jinja's autoescaping; only SVG that
:mod:`rascal_geom.figures` generated is inserted as markup.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rascal_geom import figures, sentences
from rascal_geom.compare import COMPARE_SCHEMA
from rascal_geom.display import display_names, rounded
from rascal_geom.latex import write_report_tables
from rascal_geom.runs import (ANALYSIS_SCHEMA, RunGroup, RunRecord, find_baseline, group_runs,
                              load_run, record_from_analysis)
from rascal_geom.similarity_figure import similarity_heatmap
from rascal_geom.stats import WEIGHT_BIN_EDGES, Difference, Summary, histogram_summary
from rascal_geom.tables import (config_rows, geometry_table, headline_table, lacks_interval,
                                retrieval_table)
from rascal_train.errors import RascalError
from rascal_train.files import atomic_write_text
from rascal_train.progress import track
from rascal_train.sweep import SEED_SUFFIX

#: Said once under a table with differences that have no interval.
NO_INTERVAL_NOTE = "\u201cno CI\u201d: a side has one run (n=1), so the difference has no interval."
#: At most this many classes are drawn in a per-class figure (the extremes); the table has all.
MAX_CLASSES_IN_FIGURE = 40


def _cell(s: Summary | None, size: int, bold: bool = False) -> dict:
    """Mean ± std rounded to the std's first significant digit; n only where it differs from the
    group's (``2 of 3``: some runs lack this measurement), since the header states the group's n."""
    if s is None:
        return {"text": "\u2013", "n": f"0 of {size}", "v": "", "bold": False}
    spread = s.std if s.n > 1 else None
    text = rounded(s.mean, spread) + (f" \u00b1 {rounded(s.std, spread)}" if s.n > 1 else "")
    return {"text": text, "n": "" if s.n == size else f"{s.n} of {size}", "v": f"{s.mean:.10g}",
            "bold": bold}


def _delta_cell(d: Difference | None) -> dict | None:
    """The difference and its interval, rounded to the first significant digit of the half-width."""
    if d is None:
        return None
    value = f"{d.delta:.10g}"
    if not d.has_interval:  # why is said once under the table (NO_INTERVAL_NOTE), not in each cell
        return {"text": rounded(d.delta, None, sign=True), "ci": "", "marker": "no CI",
                "cls": "noci", "v": value}
    half = (d.high - d.low) / 2
    return {"text": rounded(d.delta, half, sign=True),
            "ci": f"[{rounded(d.low, half, sign=True)}, {rounded(d.high, half, sign=True)}] "
                  f"{'paired t' if d.method == 'paired-t' else 'Welch t'}",
            "marker": "" if d.distinguishable else "\u2248 0",
            "cls": "sig" if d.distinguishable else "ns", "v": value}


def _html_rows(rows: list[dict]) -> list[dict]:
    return [{"label": r["label"], "provenance": r["provenance"],
             "cells": [_cell(s, size, i == r["best"])
                       for i, (s, size) in enumerate(zip(r["summaries"], r["sizes"]))],
             "deltas": [_delta_cell(d) for d in r["differences"]]} for r in rows]


def _settings_text(d: dict | None, skip: Sequence[str] = ()) -> str | None:
    if not d:
        return None
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items()
                     if k not in skip and v is not None)


def _checkpoint_text(path, epoch, chosen=None) -> str | None:
    if path is None:
        return None
    text = Path(str(path)).name + (f" (epoch {epoch})" if epoch is not None else "")
    return text + (f", {chosen}" if chosen else "")


def _eval_card(record: RunRecord) -> dict:
    ev = record.eval
    if not ev:
        return {}
    card = ev.get("protocol") or {}
    knn = card.get("knn") or ({"k": (ev.get("knn") or {}).get("k")} if ev.get("knn") else None)
    linear = card.get("linear") or ({"protocol": ev["linear"].get("protocol")}
                                    if ev.get("linear") else None)
    return {"split": f"{card.get('split', 'test')} (level {ev.get('level')})",
            "checkpoint": _checkpoint_text(ev.get("checkpoint"), ev.get("epoch")),
            "features": card.get("features", "backbone"),
            "linear probe": _settings_text(linear),
            "kNN": _settings_text(knn)}


def _search_text(search: dict | None) -> str | None:
    """How the neighbours were found, and for an approximate search its check, in one cell."""
    if not search:
        return None
    if search.get("method") != "approx":
        return f"exact ({'chosen by auto' if search.get('requested') == 'auto' else 'requested'})"
    index = search.get("index") or {}
    text = (f"approximate: {index.get('type')}, {index.get('nlist')} cells, nprobe "
            f"{index.get('nprobe')} ({index.get('where')})")
    check = search.get("check")
    if check:
        recall = ", ".join(f"@{k} {r:.3f}" for k, r in check["recall_at_k"].items())
        moved = ", ".join(f"{name} {sentences.fmt(m['delta'], sign=True)}"
                          for name, m in check["metrics"].items())
        text += (f"; on {check['queries']} seeded exact queries (seed {check['seed']}): recall "
                 f"{recall} (floor {check['recall_floor']}); metrics moved (approximate − exact): "
                 f"{moved}")
    return text


def _samples_text(samples: dict | None) -> str | None:
    """Which stages ran on a seeded subsample, and how many rows of how many."""
    if not samples:
        return None
    parts = [f"{stage.replace('_', ' ')} {s['n']:,} of {s['of']:,}"
             + (f" ({s['rest']})" if s.get("rest") else "")
             for stage, s in samples.items() if s["n"] < s["of"]]
    return "; ".join(parts) if parts else "every stage used every row"


def _analysis_card(record: RunRecord) -> dict:
    a = record.analysis
    if not a:
        return {}
    card = a.get("protocol") or {}
    settings = a.get("settings") or {}
    source = a.get("source") or {}
    ckpt = card.get("checkpoint") or {}
    extraction = card.get("extraction") or {}
    return {"split": card.get("split") or settings.get("split"),
            "checkpoint": _checkpoint_text(ckpt.get("path", source.get("path")),
                                           ckpt.get("epoch", source.get("epoch")),
                                           ckpt.get("chosen")),
            "features": card.get("features") or settings.get("embedding"),
            "kNN": _settings_text(card.get("knn")) or (f"leave-one-out, ks {settings.get('knn_ks')}"
                                                      if settings.get("knn_ks") else None),
            "linear probe": _settings_text(card.get("linear")),
            "extraction": _settings_text(extraction, skip=("checkpoint_sha256", "version")),
            "neighbour search": _search_text(a.get("neighbour_search")),
            "seeded subsamples": _samples_text(a.get("samples")),
            "warnings": "; ".join(a.get("warnings") or []) or None}


def _protocol_rows(groups: list[RunGroup]) -> list[dict]:
    """The protocol card: what was evaluated and how, per group; a gap says how many runs lack it.
    """
    rows = []
    for source, card in (("eval.json", _eval_card), ("analysis", _analysis_card)):
        cards = [[card(r) for r in g.runs] for g in groups]
        fields = list(dict.fromkeys(f for per_group in cards for c in per_group for f in c))
        for field in fields:
            cells = []
            for per_group in cards:
                values = [c.get(field) for c in per_group]
                known = list(dict.fromkeys(v for v in values if v is not None))
                text = "; ".join(known) if known else "\u2013"
                missing = sum(v is None for v in values)
                if known and missing:
                    text += f" (missing in {missing} of {len(values)} runs)"
                cells.append(text)
            rows.append({"key": f"{source}: {field}", "cells": cells})
    seeds = [", ".join("?" if s is None else str(s) for s in g.seeds) for g in groups]
    rows.append({"key": "seeds", "cells": seeds})
    return rows


#: The per-class results a report shows: (title, the metric's key, the field drawn). Retention is
#: one result per compared pair of levels, so its title is made per pair.
_PER_CLASS = (("geodesic variance", "geodesic_variance", "variance"),
              ("attribute consistency", "attribute_consistency", "lift"),
              ("rank stability", "rank_stability", "spearman"))


def _per_class_blocks(record: RunRecord) -> list[dict]:
    """Per-class series of one analysed run: ``{"title", "names", "values", "what"}``.

    Each per-class result is ``{"classes": [...], "<field>": [...]}``
    (:func:`rascal_geom.runs.per_class`); :mod:`rascal_geom.runs` brings older files to it.
    """
    metrics = (record.analysis or {}).get("metrics") or {}
    found = [(f"retention of {entry.get('fine')} within {entry.get('coarse')}",
              entry.get("per_class"), "retention")
             for entry in metrics.get("hierarchy_retention") or [] if isinstance(entry, dict)]
    found += [(title, (metrics.get(key) or {}).get("per_class"), field)
              for title, key, field in _PER_CLASS if isinstance(metrics.get(key), dict)]
    # JSON writes a class without a value as null, which float arrays read as NaN.
    return [{"title": title, "names": [str(n) for n in block["classes"]],
             "values": np.asarray(block[field], dtype=float), "what": field}
            for title, block, field in found if block and field in block]


def _classes_to_draw(first: np.ndarray, ranked_by: str) -> tuple[np.ndarray, list[str]]:
    """Which classes a per-class figure draws, and what the caption must say about the others.

    Classes without a value in the ranking series are left out of the ranking (neither "best"
    nor "worst") and counted; past :data:`MAX_CLASSES_IN_FIGURE` only the lowest and highest
    ranked are drawn.
    """
    valued = np.flatnonzero(np.isfinite(first))
    notes = []
    shown = valued
    if len(valued) > MAX_CLASSES_IN_FIGURE:
        order = valued[np.argsort(first[valued], kind="stable")]
        half = MAX_CLASSES_IN_FIGURE // 2
        shown = np.sort(np.concatenate([order[:half], order[-half:]]))
        notes.append(f"{len(shown)} of {len(valued)} classes with a value drawn (lowest and "
                     f"highest by {ranked_by}); the table lists all")
    if len(valued) < len(first):
        missing = len(first) - len(valued)
        notes.append(f"{missing} class{'es' if missing != 1 else ''} without a value for "
                     f"{ranked_by} left out of the figure and its ranking")
    return shown, notes


def _seed_mean(values: list) -> np.ndarray:
    """Per-class mean over a group's runs, ignoring NaN: ``np.nanmean`` without its warning for a
    class that no run has a value for (it stays NaN and is counted in the caption)."""
    stack = np.stack(values)
    seen = ~np.isnan(stack)
    count = seen.sum(axis=0)
    total = np.where(seen, stack, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _per_class_sections(groups: list[RunGroup], baseline: int, fig_dir: Path | None) -> list[dict]:
    by_title: dict[str, dict] = {}
    for gi, group in enumerate(groups):
        for run in group.runs:
            for block in _per_class_blocks(run):
                entry = by_title.setdefault(block["title"], {"names": block["names"],
                                                             "what": block["what"], "values": {}})
                if block["names"] != entry["names"]:
                    continue  # another class list (a different dataset): not comparable row by row
                entry["values"].setdefault(gi, []).append(block["values"])
    sections = []
    for i, (title, entry) in enumerate(by_title.items()):
        cols = {gi: _seed_mean(v) for gi, v in sorted(entry["values"].items())}
        names = entry["names"]
        col_names = [groups[gi].name for gi in cols]
        header = ["class"] + col_names
        has_delta = baseline in cols and len(cols) > 1
        if has_delta:
            header += [f"\u0394 {groups[gi].name}" for gi in cols if gi != baseline]
        rows = []
        for c, name in enumerate(names):
            cells = [{"text": sentences.fmt(v[c]), "v": f"{v[c]:.10g}"} if np.isfinite(v[c])
                     else {"text": "\u2013", "v": ""} for v in cols.values()]
            if has_delta:
                for gi, v in cols.items():
                    if gi != baseline:
                        d = v[c] - cols[baseline][c]
                        cells.append({"text": sentences.fmt(d, sign=True), "v": f"{d:.10g}"}
                                     if np.isfinite(d) else {"text": "\u2013", "v": ""})
            rows.append({"name": name, "cells": cells})
        shown, notes = _classes_to_draw(next(iter(cols.values())), col_names[0])
        fig = figures.per_class_figure([names[j] for j in shown],
                                       {groups[gi].name: v[shown] for gi, v in cols.items()},
                                       f"{title} ({entry['what']})")
        sections.append({"title": title, "what": entry["what"], "header": header, "rows": rows,
                         "svg": figures.export_figure(fig, f"per_class_{i + 1}", fig_dir),
                         "figure_note": "; ".join(notes)})
    return sections


def _curves(groups: list[RunGroup]) -> dict:
    curves: dict = {}
    for key in figures.CURVE_KEYS:
        per_group = {}
        for group in groups:
            series = []
            for run in group.runs:
                pts = [(r["epoch"], r[key]) for r in run.epoch_records
                       if isinstance(r.get(key), (int, float))
                       and isinstance(r.get("epoch"), (int, float))]
                if pts:
                    series.append(([p[0] for p in pts], [p[1] for p in pts]))
            if series:
                per_group[group.name] = series
        if per_group:
            curves[key] = per_group
    return curves


def recorded_weights(source: str | None) -> str:
    """What a RASCAL run's logged weight histogram holds, for its weight source.

    The loss logs ``1 - delta`` (the rank agreement of each positive pair) whatever the run's
    weights are; only under ``rank_agreement`` is that the raw weight it trained with.
    """
    if source in (None, "rank_agreement"):
        return "raw positive weights 1 \u2212 \u03b4 (before normalising over the positives)"
    return (f"rank agreement 1 \u2212 \u03b4 of the positive pairs, not this run's weights "
            f"(it weighted positives by {source})")


def _weights(groups: list[RunGroup]) -> list[dict]:
    """RASCAL groups' last-epoch weight histograms (counts summed over seeds) and their table."""
    out = []
    for group in groups:
        if group.runs[0].loss != "rascal":
            continue
        hists, epochs = [], []
        for run in group.runs:
            # Epochs before the cache held any positive pair's rows log an all-zero histogram.
            recs = [r for r in run.epoch_records if sum(r.get("weight_hist") or ()) > 0]
            if recs:
                hists.append(np.asarray(recs[-1]["weight_hist"], dtype=float))
                epochs.append(recs[-1].get("epoch"))
        if hists and all(h.shape == hists[0].shape for h in hists):
            counts = np.sum(hists, axis=0)
            edges = (np.linspace(0.0, 1.0, counts.size + 1) if counts.size != 20
                     else WEIGHT_BIN_EDGES)
            out.append({"group": group.name, "counts": counts, "edges": edges, "runs": len(hists),
                        "recorded": recorded_weights(group.runs[0].config.get("weights")),
                        "epoch": epochs[0] if len(set(epochs)) == 1 else None,
                        "stats": histogram_summary(counts, edges)})
    return out


def _umaps(groups: list[RunGroup], fig_dir: Path | None) -> list[dict]:
    out = []
    for gi, group in enumerate(groups):
        run = next((r for r in group.runs if (r.analysis or {}).get("umap")), None)
        if run is None:
            continue
        um, a = run.analysis["umap"], run.analysis
        labelled = um.get("labels") or {}
        levels = [lv for lv in (a.get("levels") or list(labelled)) if lv in labelled]
        panels_levels = list(dict.fromkeys([levels[0], levels[-1]])) if levels else []
        names = a.get("class_names") or {}
        panels = {lv: (np.asarray(um["labels"][lv], dtype=int), [str(x) for x in names.get(lv, [])])
                  for lv in panels_levels}
        coords = np.asarray(um["coords"], dtype=float)
        if coords.ndim != 2 or coords.shape[1] != 2 or not panels:
            continue
        fig = figures.umap_figure(coords, panels, title=f"{group.name} ({run.name})")
        trust = um.get("trustworthiness")
        out.append({"group": group.name, "run": run.name,
                    "svg": figures.export_figure(fig, f"umap_{gi + 1}", fig_dir),
                    "trustworthiness": trust, "n": int(um.get("n") or len(coords)),
                    "subsample": (f"{um['sampling']} from {um['n_total']:,} rows; the rest "
                                  f"{um['rest']}"
                                  if um.get("rest") else None),
                    "trust_text": (sentences.fmt(trust, 3) if isinstance(trust, (int, float))
                                   else "\u2013")})
    return out


def _similarity(groups: list[RunGroup], similarity: dict | None,
                fig_dir: Path | None) -> dict | None:
    """The runs' pairwise linear CKA (unbiased HSIC; a ``rascal.compare/1`` result over the run
    directories) as a heatmap ordered by group, and its mean over the run pairs of each pair of
    groups: whether two methods lie further apart than two seeds of one."""
    if not similarity:
        return None
    index = {name: i for i, name in enumerate(similarity["names"])}
    runs = [(gi, r.name) for gi, g in enumerate(groups) for r in g.runs if r.name in index]
    if len(runs) < 2:
        raise RascalError("The similarity file compares none or one of these runs (it names "
                          f"{', '.join(similarity['names'])}); run `rascal compare` on the same "
                          "run directories.")
    order = [index[name] for _, name in runs]
    matrix = np.asarray(similarity["matrices"]["cka_debiased"], dtype=float)[np.ix_(order, order)]
    title = "linear CKA (unbiased HSIC) between runs"
    names = [name for _, name in runs]
    svg = figures.export_figure(similarity_heatmap(matrix, names, names, title),
                                "similarity_runs", fig_dir)
    group_of = np.array([gi for gi, _ in runs])
    rows = []
    for ga, gb in itertools.combinations_with_replacement(sorted(set(group_of.tolist())), 2):
        ia, ib = np.flatnonzero(group_of == ga), np.flatnonzero(group_of == gb)
        block = matrix[np.ix_(ia, ib)]
        values = block[np.triu_indices(len(ia), 1)] if ga == gb else block.ravel()
        if len(values):  # a configuration of one run has no pair of seeds
            rows.append({"a": groups[ga].name, "b": groups[gb].name, "same": ga == gb,
                         "pairs": len(values), "mean": sentences.fmt(float(values.mean()), 3)})
    return {"svg": svg, "rows": rows, "n_samples": similarity.get("n_samples"),
            "split": similarity.get("split"), "embedding": similarity.get("embedding"),
            "runs": len(runs)}


def _reliability(groups: list[RunGroup], fig_dir: Path | None) -> list[dict]:
    """One reliability diagram per group: its first run whose analysis has probe calibration."""
    from rascal_geom.calibration_figure import reliability_figure

    out = []
    for gi, group in enumerate(groups):
        run = next((r for r in group.runs
                    if ((r.analysis or {}).get("metrics") or {}).get("calibration")), None)
        if run is None:
            continue
        cal = run.analysis["metrics"]["calibration"]
        out.append({"group": group.name, "run": run.name, "protocol": cal.get("protocol"),
                    "bins": cal.get("n_bins"),
                    "svg": figures.export_figure(reliability_figure(cal, title=group.name),
                                                 f"reliability_{gi + 1}", fig_dir)})
    return out


def _tradeoff(groups: list[RunGroup], baseline: int, fig_dir: Path | None) -> dict | None:
    """Retention against linear accuracy per group (more than one group, and runs with both).

    Retention is the analysis headline of the first fine level every such run has; accuracy is
    ``eval.json``'s linear top-1 when every such run has one, else the analysis' holdout probe at
    its analysed level (the axis label says which).
    """
    from rascal_geom.tradeoff_figure import tradeoff_figure

    if len(groups) < 2:
        return None
    def retention(r: RunRecord) -> dict:
        return ((r.analysis or {}).get("headline") or {}).get("retention") or {}

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    runs = [(g, r) for g in groups for r in g.runs if retention(r)]
    levels = list(retention(runs[0][1])) if runs else []
    level = next((lv for lv in levels if all(number(retention(r).get(lv)) for _, r in runs)), None)
    if level is None:
        return None
    from_eval = all(number(((r.eval or {}).get("linear") or {}).get("top1")) for _, r in runs)

    def accuracy(r: RunRecord) -> float | None:
        if from_eval:
            return r.eval["linear"]["top1"]
        a = r.analysis
        level_probed = (a.get("settings") or {}).get("level")
        return ((a.get("metrics") or {}).get("linear_probe") or {}).get(level_probed)

    points = []
    for g in groups:
        pairs = [(accuracy(r), retention(r)[level]) for gg, r in runs if gg is g]
        pairs = [(x, y) for x, y in pairs if number(x)]
        if pairs:
            points.append({"group": g.name, "x": [x for x, _ in pairs], "y": [y for _, y in pairs]})
    if len(points) < 2:
        return None
    xlabel = ("linear top-1 (eval.json, probe fitted on the train split)" if from_eval
              else "linear top-1 (analysis: holdout probe on the analysed split)")
    fig = tradeoff_figure(points, groups[baseline].name, xlabel, f"retention of {level} (analysis)")
    return {"svg": figures.export_figure(fig, "tradeoff", fig_dir), "level": level,
            "xlabel": xlabel}


def _neighbour_grids(groups: list[RunGroup]) -> list[dict]:
    """Each group's first run with neighbour thumbnails (rows of base64 PNGs, shown inline)."""
    out = []
    for group in groups:
        run = next((r for r in group.runs
                    if ((r.analysis or {}).get("neighbour_grid") or {}).get("rows")), None)
        if run is not None:
            out.append({"group": group.name, "run": run.name, **run.analysis["neighbour_grid"]})
    return out


def _render_groups(groups: list[RunGroup], baseline: int, out_html: Path, title: str,
                   latex_dir: Path | None, progress: bool, similarity: dict | None = None) -> Path:
    out_html = Path(out_html)
    fig_dir = out_html.with_name(out_html.stem + "_figures")
    headline = headline_table(groups, baseline)
    geometry = geometry_table(groups, baseline)
    retrieval = retrieval_table(groups, baseline)

    steps = ["curves", "weights", "per-class", "umap", "calibration", "trade-off", "similarity"]
    built: dict = {}
    for step in track(steps, "rendering report", disable=not progress):
        if step == "curves":
            curves = _curves(groups)
            built["curves_svg"] = (figures.export_figure(figures.curves_figure(curves),
                                                         "training_curves", fig_dir)
                                   if curves else None)
        elif step == "weights":
            weights = _weights(groups)
            built["weights"] = weights
            built["weights_svg"] = figures.export_figure(
                figures.weight_hist_figure({w["group"]: w["counts"] for w in weights
                                           if w["counts"].size == weights[0]["counts"].size},
                                          weights[0]["edges"],
                                          [g.name for g in groups]),
                "weight_histogram", fig_dir) if weights else None
        elif step == "per-class":
            built["per_class"] = _per_class_sections(groups, baseline, fig_dir)
        elif step == "umap":
            built["umaps"] = _umaps(groups, fig_dir)
        elif step == "calibration":
            built["reliability"] = _reliability(groups, fig_dir)
        elif step == "trade-off":
            built["tradeoff"] = _tradeoff(groups, baseline, fig_dir)
        else:
            built["similarity"] = _similarity(groups, similarity, fig_dir)

    names = [g.name for g in groups]
    lines = [sentences.group_sentence(names, [len(g.runs) for g in groups], baseline)]
    if len(groups) == 1:
        lines.append(sentences.single_group_sentence(
            names[0],
            [(r["label"], r["summaries"][0]) for r in headline if r["summaries"][0] is not None]))
    else:
        lines += sentences.comparison_sentences(
            names, baseline, [(r["label"], r["summaries"], r["differences"]) for r in headline])
    lines += [sentences.weight_sentence(w["group"], w["stats"], w["epoch"], w["recorded"])
                  for w in built["weights"]]
    lines += [sentences.umap_sentence(u["group"], u["trustworthiness"], u["n"])
              for u in built["umaps"] if isinstance(u["trustworthiness"], (int, float))]
    lines += [f"Warning ({r.name}): {w}" for g in groups for r in g.runs
              for w in (r.analysis or {}).get("warnings") or []]

    ctx = {
        "title": title,
        "groups": [{"name": g.name, "n": len(g.runs), "runs": [r.name for r in g.runs],
                    "paths": [str(r.path) for r in g.runs], "is_baseline": i == baseline}
                   for i, g in enumerate(groups)],
        "baseline": names[baseline],
        "config_rows": config_rows(groups),
        "protocol_rows": _protocol_rows(groups),
        "headline": _html_rows(headline),
        "geometry": _html_rows(geometry),
        "retrieval": _html_rows(retrieval),
        "retrieval_no_ci": NO_INTERVAL_NOTE if lacks_interval(retrieval) else "",
        "headline_no_ci": NO_INTERVAL_NOTE if lacks_interval(headline) else "",
        "geometry_no_ci": NO_INTERVAL_NOTE if lacks_interval(geometry) else "",
        "summary": lines,
        "weights_table": [{"group": w["group"], "runs": w["runs"], "epoch": w["epoch"],
                           "recorded": w["recorded"],
                           **{k: (f"{v:.1%}" if k.startswith("share") else sentences.fmt(v, 3))
                              for k, v in w["stats"].items() if k != "total"},
                           "total": f"{w['stats']['total']:.0f}"} for w in built["weights"]],
        "figures_dir": fig_dir.name,
        "grids": _neighbour_grids(groups),
        **{k: built[k] for k in ("curves_svg", "weights_svg", "per_class", "umaps", "reliability",
                                 "tradeoff", "similarity")},
    }
    html = template_environment().get_template("report.html").render(**ctx)
    if latex_dir is not None:
        write_report_tables(names, baseline, headline, geometry, built["weights"],
                            ctx["config_rows"], Path(latex_dir), retrieval=retrieval)
    return atomic_write_text(out_html, html)


def template_environment():
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(loader=PackageLoader("rascal_geom", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    # Only SVG produced by rascal_geom.figures passes through this filter.
    env.filters["trusted_svg"] = lambda svg: Markup(svg) if svg else ""
    return env


def _is_run_comparison(doc) -> bool:
    """Whether ``doc`` is a ``rascal.compare/1`` result over runs: names and a square matrix of
    unbiased CKA, one row per name."""
    if not isinstance(doc, Mapping) or doc.get("schema") != COMPARE_SCHEMA:
        return False
    names, matrix = doc.get("names"), (doc.get("matrices") or {}).get("cka_debiased")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return False
    try:
        m = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError):
        return False
    return m.shape == (len(names), len(names))


def render_report(inputs: Sequence[str | Path], baseline: str | None = None,
                  out_html: str | Path = "reports/report.html", latex_dir: str | Path | None = None,
                  progress: bool = True, names: Mapping[str, str] | None = None,
                  similarity: Mapping | None = None) -> Path:
    """Compare runs and write one self-contained HTML report (figures also as SVG/PDF beside it).

    Parameters
    ----------
    inputs : sequence of path
        Run directories and/or analysis JSON files; runs differing only in seed are grouped.
    baseline : str, optional
        A group name, or a loss / run name matching exactly one group; default the first group.
    out_html : path, default="reports/report.html"
        The page; figures go to ``<stem>_figures/`` next to it.
    latex_dir : path, optional
        Where to write booktabs tables (``headline.tex``, ``geometry.tex``, ``weights.tex``,
        ``config.tex``).
    progress : bool, default=True
    names : mapping of str to str, optional
        Display names overriding the derived ones (``CE``, ``SupCon``, ``RASCAL (rank
        agreement)``, :func:`rascal_geom.display.display_names`), keyed by group name or loss;
        a sweep file's ``display_names:``.
    similarity : mapping, optional
        A ``rascal.compare/1`` result over (some of) the runs (:func:`rascal_geom.compare.compare`
        of the run directories, or the JSON ``rascal compare`` writes): the runs' CKA heatmap and
        its mean within and between groups.

    Returns
    -------
    Path
        The HTML file.
    """
    if similarity is not None and not _is_run_comparison(similarity):
        raise RascalError("The similarity file is not a comparison of runs written by `rascal "
                          "compare RUN_DIR RUN_DIR ...` (its JSON, without --layers).")
    if not inputs:
        raise RascalError("No runs given; pass one or more run directories or analysis JSON files.")
    records = [load_run(p) for p in track(list(inputs), "loading runs", disable=not progress)]
    groups = group_runs(records)
    b = find_baseline(groups, baseline)
    shown = display_names([g.name for g in groups], [g.config for g in groups],
                          [g.runs[0].loss for g in groups], names)
    for group, name in zip(groups, shown):
        group.name = name
    title = "Structure report: " + " vs ".join(g.name for g in groups)
    return _render_groups(groups, b, Path(out_html), title, latex_dir, progress, similarity)


def render_analysis(analysis: dict, out_html: str | Path) -> Path:
    """The single-checkpoint page for one analysis dict (``rascal.analysis/1``).

    Returns
    -------
    Path
        The HTML file; figures go to ``<stem>_figures/`` next to it.
    """
    if not isinstance(analysis, dict) or analysis.get("schema") != ANALYSIS_SCHEMA:
        raise RascalError(f"render_analysis needs an analysis dict with schema "
                          f"{ANALYSIS_SCHEMA!r}; pass the object `rascal analyze` writes.")
    record = record_from_analysis(analysis)
    group = RunGroup(record.name, [record])
    source = (analysis.get("source") or {}).get("path") or record.name
    return _render_groups([group], 0, Path(out_html), f"Structure analysis: {source}", None, False)


def default_report_name(inputs: Sequence[str | Path]) -> str:
    """``<a>_vs_<b>`` from the inputs' names, safe as a file name."""
    stems = list(dict.fromkeys(SEED_SUFFIX.sub("", Path(p).resolve().name.removesuffix(".json"))
                               for p in inputs))
    name = "_vs_".join(stems)[:80]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "report"
