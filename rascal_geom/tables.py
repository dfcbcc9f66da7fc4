"""The comparison tables of a report, as numbers: one row per measurement, one column per run group.

A row holds each group's :class:`~rascal_geom.stats.Summary` over seeds and each group's
:class:`~rascal_geom.stats.Difference` from the baseline. :mod:`rascal_geom.report` renders the
rows as HTML and :mod:`rascal_geom.latex` as booktabs tables, so both show the same numbers.
"""

from __future__ import annotations

import json
import math
from typing import Sequence

from rascal_geom.display import best_separated
from rascal_geom.runs import RunGroup, RunRecord, analysis_provenance, headline_values
from rascal_geom.stats import Difference, Summary, difference_interval, summarize

_HEADLINE_LABELS = {"precision_at_1": "P@1", "r_precision": "R-precision", "map_at_r": "MAP@R",
                    **{f"recall_at_{k}": f"Recall@{k}" for k in (1, 2, 4, 8)},
                    "nc3": "NC3 (self-duality)", "nc4_agreement": "NC4 (nearest-centre agreement)",
                    "cdnv": "CDNV", "rankme": "RankMe (raw rows)", "ece": "probe ECE (15 bins)",
                    "cka_debiased": "CKA to the previous checkpoint",
                    "linear_top1": "linear top-1", "knn_top1": "kNN top-1",
                    "attribute_lift": "attribute lift", "geodesic_variance": "geodesic variance",
                    "collapse_ratio": "collapse ratio", "rank_stability": "rank stability"}
_HEADLINE_ORDER = ("linear_top1", "knn_top1", "retention", "attribute_lift", "geodesic_variance",
                   "collapse_ratio", "rank_stability")
#: The analysis' retrieval, collapse, spectrum and calibration numbers: (metric key, where in
#: ``metrics``, field). Within-coarse MAP@R rows are added per level pair.
_RETRIEVAL_FIELDS = (("precision_at_1", ("retrieval", "leave_one_out"), "precision_at_1"),
                     ("r_precision", ("retrieval", "leave_one_out"), "r_precision"),
                     ("map_at_r", ("retrieval", "leave_one_out"), "map_at_r"),
                     *((f"recall_at_{k}", ("retrieval", "leave_one_out"), f"recall_at_{k}")
                       for k in (1, 2, 4, 8)),
                     ("nc3", ("collapse",), "nc3"),
                     ("nc4_agreement", ("collapse",), "nc4_agreement"),
                     ("cdnv", ("collapse",), "cdnv"), ("rankme", ("spectrum",), "rankme"),
                     ("ece", ("calibration",), "ece"),
                     ("cka_debiased", ("similarity_over_training",), "cka_debiased"))
_RETRIEVAL_ORDER = tuple(f[0] for f in _RETRIEVAL_FIELDS[:7]) + ("within_map_at_r",) + tuple(
    f[0] for f in _RETRIEVAL_FIELDS[7:])
_GEOMETRY_KEYS = ("class_alignment", "uniformity", "nc1", "equinorm", "equiangularity",
                  "effective_rank", "pos_sim", "neg_sim", "sim_gap", "margin_violation")


def _metric_label(key: str) -> str:
    """``knn_top1|eval.json: test split ...`` -> ``kNN top-1 (eval.json)``: metric and source."""
    metric, _, provenance = key.partition("|")
    if metric.startswith("retention:"):
        label = f"retention ({metric.split(':', 1)[1]})"
    elif metric.startswith("within_map_at_r:"):
        _, fine, coarse = metric.split(":")
        label = f"MAP@R of {fine} within {coarse}"
    else:
        label = _HEADLINE_LABELS.get(metric, metric.replace("_", " "))
    return f"{label} ({provenance.split(':', 1)[0]})" if provenance else label


def _ordered(keys, metric_order: Sequence[str]) -> list[str]:
    """Keys by metric (in ``metric_order``, ``name:*`` at ``name``), then by source."""
    def rank(key: str) -> tuple:
        metric = key.partition("|")[0]
        name = metric.split(":", 1)[0]  # retention:<level>, within_map_at_r:<fine>:<coarse>
        place = metric_order.index(name) if name in metric_order else len(metric_order)
        return (place, metric, key)
    return sorted(keys, key=rank)


def _by_seed(group: RunGroup, per_run: list[dict], key: str) -> dict | list:
    """The metric's values over a group's runs: keyed by seed when seeds are known and distinct."""
    pairs = [(run.seed, vals[key]) for run, vals in zip(group.runs, per_run) if key in vals]
    seeds = [s for s, _ in pairs]
    if None not in seeds and len(set(seeds)) == len(seeds):
        return dict(pairs)
    return [v for _, v in pairs]


def _metric_table(groups: list[RunGroup], per_run: list[list[dict]], metric_order: Sequence[str],
                  baseline: int) -> list[dict]:
    """Rows ``{"key", "label", "provenance", "summaries", "differences", "sizes", "best"}``.

    ``per_run`` holds each run's values keyed ``metric|provenance``; a row is one such key, with
    mean ± std per group, the difference from the baseline group, and the index of the group
    printed in bold (:func:`rascal_geom.display.best_separated`; ``None`` for none).
    """
    keys = _ordered({k for pr in per_run for vals in pr for k in vals}, metric_order)
    rows = []
    for key in keys:
        values = [_by_seed(g, pr, key) for g, pr in zip(groups, per_run)]
        summaries: list[Summary | None] = [
            summarize(list(v.values()) if isinstance(v, dict) else v) if len(v) else None
            for v in values]
        diffs: list[Difference | None] = [None] * len(groups)
        if summaries[baseline] is not None:
            for g in range(len(groups)):
                if g != baseline and summaries[g] is not None:
                    diffs[g] = difference_interval(values[g], values[baseline])
        rows.append({"key": key, "label": _metric_label(key), "provenance": key.partition("|")[2],
                     "summaries": summaries, "differences": diffs,
                     "sizes": [len(g.runs) for g in groups],
                     "best": best_separated(key.partition("|")[0].split(":", 1)[0], values)})
    return rows


def headline_table(groups: list[RunGroup], baseline: int) -> list[dict]:
    """The headline metrics (:func:`rascal_geom.runs.headline_values`), one row per source."""
    per_run = [[headline_values(r) for r in g.runs] for g in groups]
    return _metric_table(groups, per_run, _HEADLINE_ORDER, baseline)


def _geometry_values(record: RunRecord) -> dict[str, float]:
    """The analysis' global-geometry numbers keyed ``metric|provenance``, like the headline ones."""
    a = record.analysis or {}
    where = analysis_provenance(a)["structure"] if a else ""
    return {f"{k}|{where}": float(v)
            for k, v in ((a.get("metrics") or {}).get("geometry") or {}).items()
            if k in _GEOMETRY_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def geometry_table(groups: list[RunGroup], baseline: int) -> list[dict]:
    """The analysis' embedding-geometry numbers, one row per metric."""
    per_run = [[_geometry_values(r) for r in g.runs] for g in groups]
    return _metric_table(groups, per_run, _GEOMETRY_KEYS, baseline)


def _retrieval_values(record: RunRecord) -> dict[str, float]:
    """The analysis' retrieval, collapse, spectrum and calibration numbers, keyed
    ``metric|provenance`` like the headline ones."""
    a = record.analysis or {}
    metrics = a.get("metrics") or {}
    if not metrics.get("retrieval"):
        return {}
    where = analysis_provenance(a)["structure"]
    loo = metrics["retrieval"].get("leave_one_out") or {}
    over_training = metrics.get("similarity_over_training") or {}
    provenance = {"retrieval": f"{where}, level {loo.get('level')}, {loo.get('queries')}",
                  "collapse": f"{where}, {(metrics.get('collapse') or {}).get('rows')}",
                  "spectrum": f"{where}, {(metrics.get('spectrum') or {}).get('rankme_rows')}",
                  "calibration": f"{where}, {(metrics.get('calibration') or {}).get('protocol')}",
                  "similarity_over_training": f"{where}, previous checkpoint vs this one, "
                                              f"{over_training.get('estimator')}"}
    out = {}
    for key, path, field in _RETRIEVAL_FIELDS:
        block = metrics
        for step in path:
            block = (block or {}).get(step)
        value = (block or {}).get(field)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and not math.isnan(value):
            out[f"{key}|{provenance[path[0]]}"] = float(value)
    for w in metrics["retrieval"].get("within_coarse") or []:
        if isinstance(w.get("map_at_r"), (int, float)):
            how = w.get("queries") or "exact"
            key = f"within_map_at_r:{w['fine']}:{w['coarse']}"
            out[f"{key}|{where}, within the coarse class, {how}"] = float(w["map_at_r"])
    return out


def retrieval_table(groups: list[RunGroup], baseline: int) -> list[dict]:
    """Retrieval (P@1, R-precision, MAP@R, Recall@K, within-coarse MAP@R), NC3, NC4, CDNV,
    RankMe, probe ECE and CKA to the previous checkpoint, one row per metric."""
    per_run = [[_retrieval_values(r) for r in g.runs] for g in groups]
    return _metric_table(groups, per_run, _RETRIEVAL_ORDER, baseline)


def lacks_interval(rows: list[dict]) -> bool:
    """Whether a difference in ``rows`` has no interval (a side with one run)."""
    return any(d is not None and not d.has_interval for r in rows for d in r["differences"])


def config_rows(groups: list[RunGroup]) -> list[dict]:
    """Rows ``{"key", "cells", "differs"}`` of the groups' configurations, differing keys first."""
    keys = sorted(set().union(*(g.config for g in groups)))

    def show(v) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    rows = [{"key": k, "cells": [show(g.config[k]) if k in g.config else "\u2013" for g in groups]}
            for k in keys]
    for row in rows:
        row["differs"] = len(set(row["cells"])) > 1
    rows.sort(key=lambda r: (not r["differs"], r["key"]))
    seeds = [", ".join("?" if s is None else str(s) for s in g.seeds) for g in groups]
    rows.append({"key": "seeds", "differs": False, "cells": seeds})
    return rows
