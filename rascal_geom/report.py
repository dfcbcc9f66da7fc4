"""Self-contained HTML structure reports (and booktabs tables) from runs and analysis files.

:func:`render_report` compares run groups (runs that differ only in seed) against a baseline;
:func:`render_analysis` is the single-checkpoint page ``rascal analyze`` writes. Both fill the
same template: inline CSS, inline SVG figures (also saved as SVG and PDF beside the page),
tables sortable by a few lines of inline script, no network resource. All user text (run and
class names, paths, config values) goes through Jinja's autoescaping; only SVG that
:mod:`rascal_geom.figures` generated is inserted as markup.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from rascal_geom import figures, summary
from rascal_geom.latex import TeX, booktabs_table
from rascal_geom.latex import escape as tex_escape
from rascal_geom.runs import (SEED_SUFFIX, RunGroup, RunRecord, analysis_provenance, find_baseline, group_runs,
                              headline_values, load_run, record_from_analysis)
from rascal_geom.stats import WEIGHT_BIN_EDGES, Difference, Summary, difference_interval, \
    histogram_summary, summarize
from rascal_train.errors import RascalError
from rascal_train.io import atomic_write_text
from rascal_train.progress import track

_HEADLINE_LABELS = {"linear_top1": "linear top-1", "knn_top1": "kNN top-1", "attribute_lift": "attribute lift",
                    "geodesic_variance": "geodesic variance", "collapse_ratio": "collapse ratio",
                    "rank_stability": "rank stability"}
_GEOMETRY_KEYS = ("class_alignment", "uniformity", "nc1", "equinorm", "equiangularity", "effective_rank",
                  "pos_sim", "neg_sim", "sim_gap", "margin_violation")
_HEADLINE_ORDER = ("linear_top1", "knn_top1", "retention", "attribute_lift", "geodesic_variance", "collapse_ratio",
                   "rank_stability")
#: Said once under a table with differences that have no interval.
NO_INTERVAL_NOTE = "\u201cno CI\u201d: a side has one run (n=1), so the difference has no interval."
#: At most this many classes are drawn in a per-class figure (the extremes); the table has all.
MAX_CLASSES_IN_FIGURE = 40


def _metric_label(key: str) -> str:
    """``knn_top1|eval.json: test split ...`` -> ``kNN top-1 (eval.json)``: the metric and its source."""
    metric, _, provenance = key.partition("|")
    if metric.startswith("retention:"):
        label = f"retention ({metric.split(':', 1)[1]})"
    else:
        label = _HEADLINE_LABELS.get(metric, metric.replace("_", " "))
    return f"{label} ({provenance.split(':', 1)[0]})" if provenance else label


def _provenance(key: str) -> str:
    return key.partition("|")[2]


def _ordered(keys, metric_order: Sequence[str]) -> list[str]:
    """Keys by metric (in ``metric_order``; ``retention:*`` where ``"retention"`` is), then by source."""
    def rank(key: str) -> tuple:
        metric = key.partition("|")[0]
        name = "retention" if metric.startswith("retention:") else metric
        return (metric_order.index(name) if name in metric_order else len(metric_order), metric, key)
    return sorted(keys, key=rank)


def _by_seed(group: RunGroup, per_run: list[dict], key: str) -> dict | list:
    """The metric's values over a group's runs: keyed by seed when seeds are known and distinct."""
    pairs = [(run.seed, vals[key]) for run, vals in zip(group.runs, per_run) if key in vals]
    seeds = [s for s, _ in pairs]
    if None not in seeds and len(set(seeds)) == len(seeds):
        return dict(pairs)
    return [v for _, v in pairs]


def _metric_table(groups: list[RunGroup], per_run: list[list[dict]], keys: Sequence[str],
                  baseline: int) -> list[dict]:
    """Rows ``{"key", "label", "summaries", "differences"}``: mean ± std per group, deltas vs baseline."""
    rows = []
    for key in keys:
        values = [_by_seed(g, pr, key) for g, pr in zip(groups, per_run)]
        summaries: list[Summary | None] = [
            summarize(list(v.values()) if isinstance(v, dict) else v) if len(v) else None for v in values]
        diffs: list[Difference | None] = [None] * len(groups)
        if summaries[baseline] is not None:
            for g in range(len(groups)):
                if g != baseline and summaries[g] is not None:
                    diffs[g] = difference_interval(values[g], values[baseline])
        rows.append({"key": key, "label": _metric_label(key), "provenance": _provenance(key),
                     "summaries": summaries, "differences": diffs, "sizes": [len(g.runs) for g in groups]})
    return rows


def _cell(s: Summary | None, size: int) -> dict:
    """Mean ± std with its n; ``n=2 of 3`` when some of the group's runs lack this measurement."""
    if s is None:
        return {"text": "\u2013", "n": f"0 of {size}", "v": ""}
    text = summary.fmt(s.mean) + (f" \u00b1 {summary.fmt(s.std)}" if s.n > 1 else "")
    return {"text": text, "n": str(s.n) if s.n == size else f"{s.n} of {size}", "v": f"{s.mean:.10g}"}


def _delta_cell(d: Difference | None) -> dict | None:
    if d is None:
        return None
    if not d.has_interval:  # why is said once under the table (NO_INTERVAL_NOTE), not in each cell
        return {"text": summary.fmt(d.delta, sign=True), "ci": "", "marker": "no CI", "cls": "noci",
                "v": f"{d.delta:.10g}"}
    return {"text": summary.fmt(d.delta, sign=True),
            "ci": f"[{summary.fmt(d.low, sign=True)}, {summary.fmt(d.high, sign=True)}] "
                  f"{'paired t' if d.method == 'paired-t' else 'Welch t'}",
            "marker": "" if d.distinguishable else "\u2248 0", "cls": "sig" if d.distinguishable else "ns",
            "v": f"{d.delta:.10g}"}


def _lacks_interval(rows: list[dict]) -> bool:
    return any(d is not None and not d.has_interval for r in rows for d in r["differences"])


def _html_rows(rows: list[dict]) -> list[dict]:
    return [{"label": r["label"], "provenance": r["provenance"],
             "cells": [_cell(s, size) for s, size in zip(r["summaries"], r["sizes"])],
             "deltas": [_delta_cell(d) for d in r["differences"]]} for r in rows]


def _geometry_values(record: RunRecord) -> dict[str, float]:
    """The analysis' global-geometry numbers keyed ``metric|provenance``, like the headline ones."""
    a = record.analysis or {}
    where = analysis_provenance(a)["structure"] if a else ""
    return {f"{k}|{where}": float(v) for k, v in ((a.get("metrics") or {}).get("geometry") or {}).items()
            if k in _GEOMETRY_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _settings_text(d: dict | None, skip: Sequence[str] = ()) -> str | None:
    if not d:
        return None
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items() if k not in skip and v is not None)


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
    linear = card.get("linear") or ({"protocol": ev["linear"].get("protocol")} if ev.get("linear") else None)
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
    text = (f"approximate: {index.get('type')}, {index.get('nlist')} cells, nprobe {index.get('nprobe')} "
            f"({index.get('where')})")
    check = search.get("check")
    if check:
        recall = ", ".join(f"@{k} {r:.3f}" for k, r in check["recall_at_k"].items())
        moved = ", ".join(f"{name} {summary.fmt(m['delta'], sign=True)}" for name, m in check["metrics"].items())
        text += (f"; on {check['queries']} seeded exact queries (seed {check['seed']}): recall {recall} "
                 f"(floor {check['recall_floor']}); metrics moved (approximate − exact): {moved}")
    return text


def _samples_text(samples: dict | None) -> str | None:
    """Which stages ran on a seeded subsample, and how many rows of how many."""
    if not samples:
        return None
    parts = [f"{stage.replace('_', ' ')} {s['n']:,} of {s['of']:,}" + (f" ({s['rest']})" if s.get("rest") else "")
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
            "checkpoint": _checkpoint_text(ckpt.get("path", source.get("path")), ckpt.get("epoch", source.get("epoch")),
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
    """The protocol card: what was evaluated and how, per group; a gap says how many runs lack it."""
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
    rows.append({"key": "seeds", "cells": [", ".join("?" if s is None else str(s) for s in g.seeds) for g in groups]})
    return rows


def _config_rows(groups: list[RunGroup]) -> list[dict]:
    keys = sorted(set().union(*(g.config for g in groups)))

    def show(v) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    rows = [{"key": k, "cells": [show(g.config[k]) if k in g.config else "\u2013" for g in groups]}
            for k in keys]
    for row in rows:
        row["differs"] = len(set(row["cells"])) > 1
    rows.sort(key=lambda r: (not r["differs"], r["key"]))
    rows.append({"key": "seeds", "differs": False,
                 "cells": [", ".join("?" if s is None else str(s) for s in g.seeds) for g in groups]})
    return rows


def _per_class_columns(per_class) -> tuple[list[str] | None, dict[str, np.ndarray]]:
    """Normalise a per-class block (list, name->value, field->list, or name->{field: value})."""
    def numeric(v) -> bool:  # JSON writes a class without a value as null
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    # An analysis dict straight from the metrics (not yet through JSON) holds arrays.
    if isinstance(per_class, np.ndarray):
        per_class = per_class.tolist()
    if isinstance(per_class, dict):
        per_class = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in per_class.items()}
    if isinstance(per_class, list) and per_class and all(numeric(v) for v in per_class):
        return None, {"value": np.asarray(per_class, dtype=float)}
    if isinstance(per_class, dict) and per_class:
        vals = list(per_class.values())
        if all(isinstance(v, list) for v in vals):
            return None, {k: np.asarray(v, dtype=float) for k, v in per_class.items()
                          if all(numeric(x) for x in v)}
        names = [str(k) for k in per_class]
        if all(isinstance(v, (int, float)) for v in vals):
            return names, {"value": np.asarray(vals, dtype=float)}
        if all(isinstance(v, dict) for v in vals):
            fields = [f for f in vals[0] if all(isinstance(v.get(f), (int, float)) for v in vals)]
            return names, {f: np.asarray([v[f] for v in vals], dtype=float) for f in fields}
    return None, {}


def _pick_field(cols: dict[str, np.ndarray], preferred: Sequence[str]) -> str | None:
    for f in preferred:
        if f in cols:
            return f
    return next(iter(cols), None)


def _per_class_blocks(record: RunRecord) -> list[dict]:
    """Per-class series of one analysed run: ``{"title", "level", "names", "values", "what"}``."""
    a = record.analysis or {}
    names_by_level = a.get("class_names") or {}
    metrics = a.get("metrics") or {}
    blocks = []

    def add(title: str, level_hint: str | None, per_class, preferred: Sequence[str]) -> None:
        names, cols = _per_class_columns(per_class)
        field = _pick_field(cols, preferred)
        if field is None:
            return
        values = cols[field]
        level = level_hint
        if names is None:
            candidates = ([level_hint] if level_hint else []) + list(names_by_level)
            level = next((lv for lv in candidates if len(names_by_level.get(lv, [])) == len(values)), None)
            names = list(names_by_level[level]) if level else [f"class {i}" for i in range(len(values))]
        blocks.append({"title": title, "level": level, "names": [str(n) for n in names],
                       "values": values, "what": field})

    for entry in metrics.get("hierarchy_retention") or []:
        if isinstance(entry, dict) and entry.get("per_class"):
            add(f"retention of {entry.get('fine')} within {entry.get('coarse')}", entry.get("coarse"),
                entry["per_class"], ("retention", "accuracy"))
    gv = metrics.get("geodesic_variance") or {}
    if isinstance(gv, dict) and gv.get("per_class"):
        add("geodesic variance", None, gv["per_class"], ("variance", "mean", "value"))
    ac = metrics.get("attribute_consistency") or {}
    if isinstance(ac, dict) and ac.get("per_class"):
        add("attribute consistency", None, ac["per_class"], ("lift", "agreement"))
    rs = metrics.get("rank_stability") or {}
    if isinstance(rs, dict) and rs.get("per_class"):
        add("rank stability", None, rs["per_class"], ("spearman", "value"))
    return blocks


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
        notes.append(f"{len(shown)} of {len(valued)} classes with a value drawn (lowest and highest by "
                     f"{ranked_by}); the table lists all")
    if len(valued) < len(first):
        notes.append(f"{len(first) - len(valued)} class{'es' if len(first) - len(valued) != 1 else ''} without a "
                     f"value for {ranked_by} left out of the figure and its ranking")
    return shown, notes


def _per_class_sections(groups: list[RunGroup], baseline: int, fig_dir: Path | None) -> list[dict]:
    by_title: dict[str, dict] = {}
    for gi, group in enumerate(groups):
        for run in group.runs:
            for block in _per_class_blocks(run):
                entry = by_title.setdefault(block["title"], {"names": block["names"], "what": block["what"],
                                                             "values": {}})
                if block["names"] != entry["names"]:
                    continue  # another class list (a different dataset): not comparable row by row
                entry["values"].setdefault(gi, []).append(block["values"])
    sections = []
    for i, (title, entry) in enumerate(by_title.items()):
        cols = {gi: np.nanmean(np.stack(v), axis=0) for gi, v in sorted(entry["values"].items())}
        names = entry["names"]
        col_names = [groups[gi].name for gi in cols]
        header = ["class"] + col_names
        has_delta = baseline in cols and len(cols) > 1
        if has_delta:
            header += [f"\u0394 {groups[gi].name}" for gi in cols if gi != baseline]
        rows = []
        for c, name in enumerate(names):
            cells = [{"text": summary.fmt(v[c]), "v": f"{v[c]:.10g}"} if np.isfinite(v[c])
                     else {"text": "\u2013", "v": ""} for v in cols.values()]
            if has_delta:
                for gi, v in cols.items():
                    if gi != baseline:
                        d = v[c] - cols[baseline][c]
                        cells.append({"text": summary.fmt(d, sign=True), "v": f"{d:.10g}"} if np.isfinite(d)
                                     else {"text": "\u2013", "v": ""})
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
                       if isinstance(r.get(key), (int, float)) and isinstance(r.get("epoch"), (int, float))]
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
            edges = np.linspace(0.0, 1.0, counts.size + 1) if counts.size != 20 else WEIGHT_BIN_EDGES
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
        levels = [lv for lv in (a.get("levels") or list(um.get("labels") or {})) if lv in (um.get("labels") or {})]
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
                    "subsample": (f"{um['sampling']} from {um['n_total']:,} rows; the rest {um['rest']}"
                                  if um.get("rest") else None),
                    "trust_text": summary.fmt(trust, 3) if isinstance(trust, (int, float)) else "\u2013"})
    return out


def _latex(ctx: dict, headline: list[dict], geometry: list[dict], weights: list[dict],
           groups: list[RunGroup], baseline: int, latex_dir: Path) -> list[Path]:
    names = [g.name for g in groups]
    others = [i for i in range(len(groups)) if i != baseline]

    def tex_cell(s: Summary | None) -> TeX:
        if s is None:
            return TeX("--")
        return TeX(f"{s.mean:.4f}" + (rf" $\pm$ {s.std:.4f}" if s.n > 1 else "") + f" ($n={s.n}$)")

    def tex_delta(d: Difference | None) -> TeX:
        if d is None:
            return TeX("--")
        if not d.has_interval:
            return TeX(f"${d.delta:+.4f}$ (no CI)")
        mark = "" if d.distinguishable else r"$^{\circ}$"
        return TeX(f"${d.delta:+.4f}$ [${d.low:+.4f}$, ${d.high:+.4f}$]{mark}")

    def table(rows: list[dict], caption: str, label: str) -> str:
        header = ["metric"] + names + [TeX(r"$\Delta$ " + tex_escape(names[i])) for i in others]
        body = [[r["label"]] + [tex_cell(s) for s in r["summaries"]] + [tex_delta(r["differences"][i])
                                                                        for i in others] for r in rows]
        return booktabs_table(header, body, caption=caption, label=label)

    note = (f"Mean and std over seeds; differences from the baseline {names[baseline]} with 95% intervals "
            f"(paired t over matching seeds, else Welch t); a circle marks an interval that contains 0.")

    def caption(what: str, rows: list[dict]) -> str:
        return f"{what} {note}" + (" No CI: a side has one run (n=1)." if _lacks_interval(rows) else "")

    written = [atomic_write_text(latex_dir / "headline.tex", table(headline, caption("Headline metrics.", headline),
                                                                  "tab:rascal-headline"))]
    if geometry:
        written.append(atomic_write_text(latex_dir / "geometry.tex", table(
            geometry, caption("Embedding geometry.", geometry), "tab:rascal-geometry")))
    if weights:
        rows = [[w["group"], f"{w['stats']['mean']:.3f}", f"{w['stats']['std']:.3f}",
                 f"{w['stats']['share_ge_0.9']:.1%}", f"{w['stats']['share_ge_0.7']:.1%}",
                 f"{w['stats']['share_lt_0.3']:.1%}"] for w in weights]
        written.append(atomic_write_text(latex_dir / "weights.tex", booktabs_table(
            ["run group", "mean", "std", TeX(r"$\geq 0.9$"), TeX(r"$\geq 0.7$"), TeX(r"$< 0.3$")], rows,
            caption="Logged weight histograms of the RASCAL runs at the last logged epoch (mean and std from bin "
                    "centres of 20 bins; shares exact). Recorded: " + "; ".join(
                        f"{w['group']}: {w['recorded']}" for w in weights) + ".", label="tab:rascal-weights")))
    cfg = ctx["config_rows"]
    written.append(atomic_write_text(latex_dir / "config.tex", booktabs_table(
        ["setting"] + names, [[r["key"]] + r["cells"] for r in cfg],
        caption="Configurations compared (differing settings first).", label="tab:rascal-config",
        align="l" * (len(names) + 1))))
    return written


def _render_groups(groups: list[RunGroup], baseline: int, out_html: Path, title: str,
                   latex_dir: Path | None, progress: bool) -> Path:
    out_html = Path(out_html)
    fig_dir = out_html.with_name(out_html.stem + "_figures")
    per_run = [[headline_values(r) for r in g.runs] for g in groups]
    keys = set(k for pr in per_run for vals in pr for k in vals)
    headline = _metric_table(groups, per_run, _ordered(keys, _HEADLINE_ORDER), baseline)
    geo_run = [[_geometry_values(r) for r in g.runs] for g in groups]
    geo_keys = _ordered(set(k for pr in geo_run for vals in pr for k in vals), _GEOMETRY_KEYS)
    geometry = _metric_table(groups, geo_run, geo_keys, baseline)

    steps = ["curves", "weights", "per-class", "umap"]
    built: dict = {}
    for step in track(steps, "rendering report", disable=not progress):
        if step == "curves":
            curves = _curves(groups)
            built["curves_svg"] = figures.export_figure(figures.curves_figure(curves), "training_curves",
                                                        fig_dir) if curves else None
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
        else:
            built["umaps"] = _umaps(groups, fig_dir)

    names = [g.name for g in groups]
    sentences = [summary.group_sentence(names, [len(g.runs) for g in groups], baseline)]
    if len(groups) == 1:
        sentences.append(summary.single_group_sentence(
            names[0], [(r["label"], r["summaries"][0]) for r in headline if r["summaries"][0] is not None]))
    else:
        sentences += summary.comparison_sentences(
            names, baseline, [(r["label"], r["summaries"], r["differences"]) for r in headline])
    sentences += [summary.weight_sentence(w["group"], w["stats"], w["epoch"], w["recorded"])
                  for w in built["weights"]]
    sentences += [summary.umap_sentence(u["group"], u["trustworthiness"], u["n"]) for u in built["umaps"]
                  if isinstance(u["trustworthiness"], (int, float))]
    sentences += [f"Warning ({r.name}): {w}" for g in groups for r in g.runs for w in (r.analysis or {}).get("warnings") or []]

    ctx = {
        "title": title,
        "groups": [{"name": g.name, "n": len(g.runs), "runs": [r.name for r in g.runs],
                    "paths": [str(r.path) for r in g.runs], "is_baseline": i == baseline}
                   for i, g in enumerate(groups)],
        "baseline": names[baseline],
        "config_rows": _config_rows(groups),
        "protocol_rows": _protocol_rows(groups),
        "headline": _html_rows(headline),
        "geometry": _html_rows(geometry),
        "headline_no_ci": NO_INTERVAL_NOTE if _lacks_interval(headline) else "",
        "geometry_no_ci": NO_INTERVAL_NOTE if _lacks_interval(geometry) else "",
        "summary": sentences,
        "weights_table": [{"group": w["group"], "runs": w["runs"], "epoch": w["epoch"], "recorded": w["recorded"],
                           **{k: (f"{v:.1%}" if k.startswith("share") else summary.fmt(v, 3))
                              for k, v in w["stats"].items() if k != "total"},
                           "total": f"{w['stats']['total']:.0f}"} for w in built["weights"]],
        "figures_dir": fig_dir.name,
        **{k: built[k] for k in ("curves_svg", "weights_svg", "per_class", "umaps")},
    }
    html = _environment().get_template("report.html").render(**ctx)
    if latex_dir is not None:
        _latex(ctx, headline, geometry, built["weights"], groups, baseline, Path(latex_dir))
    return atomic_write_text(out_html, html)


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(loader=PackageLoader("rascal_geom", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    # Only SVG produced by rascal_geom.figures passes through this filter.
    env.filters["trusted_svg"] = lambda svg: Markup(svg) if svg else ""
    return env


def render_report(inputs: Sequence[str | Path], baseline: str | None = None,
                  out_html: str | Path = "reports/report.html", latex_dir: str | Path | None = None,
                  progress: bool = True) -> Path:
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

    Returns
    -------
    Path
        The HTML file.
    """
    if not inputs:
        raise RascalError("No runs given; pass one or more run directories or analysis JSON files.")
    records = [load_run(p) for p in track(list(inputs), "loading runs", disable=not progress)]
    groups = group_runs(records)
    b = find_baseline(groups, baseline)
    title = "Structure report: " + " vs ".join(g.name for g in groups)
    return _render_groups(groups, b, Path(out_html), title, latex_dir, progress)


def render_analysis(analysis: dict, out_html: str | Path) -> Path:
    """The single-checkpoint page for one analysis dict (schema ``rascal.analysis/1``).

    Returns
    -------
    Path
        The HTML file; figures go to ``<stem>_figures/`` next to it.
    """
    if not isinstance(analysis, dict) or analysis.get("schema") != "rascal.analysis/1":
        raise RascalError("render_analysis needs an analysis dict with schema 'rascal.analysis/1'; "
                          "pass the object `rascal analyze` writes.")
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
