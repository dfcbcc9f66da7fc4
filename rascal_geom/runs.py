"""Load training runs and analysis files into one record each, and group runs that
differ only in seed.

A *run directory* (``runs/<name>/``) holds ``config.json``, ``train_log.jsonl``, and, once
evaluated and analysed, ``eval.json`` and ``analysis.json``. An *analysis JSON* is the file
``rascal analyze`` writes (schema ``rascal.analysis/1``); when its ``source.run_dir`` still
exists, that run's log and evaluation are read too. Both become a :class:`RunRecord`.

Every per-class result of an analysis has one shape, :func:`per_class`. Files written before that
shape was fixed are brought to it once, as they are read (:func:`current_per_class`), so the
report reads one shape only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rascal_geom.metrics.knn import KNN_TEMPERATURE
from rascal_train.errors import RascalError
from rascal_train.files import read_jsonl
from rascal_train.sweep import SEED_SUFFIX

ANALYSIS_SCHEMA = "rascal.analysis/1"

#: Config keys that do not change what is being measured: runs that differ only in these
#: are repeats of one configuration (where files go, where the data lives, the seed).
NON_IDENTITY_KEYS = frozenset({"seed", "out", "out_dir", "run_dir", "name", "resume", "data_root",
                               "device", "num_workers", "quiet", "config", "monitor", "log_every"})


def per_class(names: list[str], **columns) -> dict:
    """One metric's per-class numbers as the analysis stores them and the report reads them.

    Parameters
    ----------
    names : list of str
        The class names of the level the metric ran at, in label order.
    **columns : ndarray of shape (n_classes,)
        One series per field, indexed by label; NaN where a class has no value.

    Returns
    -------
    dict
        ``{"classes": names, "<field>": values, ...}``. A split that lacks a level's last labels
        gives shorter series (the metrics count classes up to the largest label present), so the
        classes are the names those series cover.
    """
    n = len(next(iter(columns.values())))
    return {"classes": list(names[:n]), **columns}



def _old_names(n: int, names_by_level: dict, level: str | None) -> list[str]:
    """The class names an old per-class series meant: its level's, else a level of ``n`` classes."""
    for lvl in ([level] if level else []) + list(names_by_level):
        if len(names_by_level.get(lvl) or ()) == n:
            return [str(name) for name in names_by_level[lvl]]
    return [f"class {i}" for i in range(n)]


def current_per_class(analysis: dict) -> dict:
    """``analysis`` with every per-class result in the shape of :func:`per_class`.

    Analyses written before the shape was fixed hold a bare list (geodesic variance, rank
    stability) or a dict of series without class names (hierarchy retention, attribute
    consistency). Their names are those of the series' level where the file says it (retention's
    coarse level), else of the first level with as many classes, as the report guessed then.
    A current analysis is returned unchanged.
    """
    metrics = analysis.get("metrics")
    if not isinstance(metrics, dict):
        return analysis
    names_by_level = analysis.get("class_names") or {}

    def upgraded(block, field: str, level: str | None = None):
        if isinstance(block, list) and block:
            block = {field: block}
        if not isinstance(block, dict) or not block or "classes" in block:
            return block
        n = len(next(iter(block.values())))
        return per_class(_old_names(n, names_by_level, level), **block)

    metrics = dict(metrics)
    if isinstance(metrics.get("hierarchy_retention"), list):
        metrics["hierarchy_retention"] = [
            {**entry, "per_class": upgraded(entry["per_class"], "retention", entry.get("coarse"))}
            if isinstance(entry, dict) and "per_class" in entry else entry
            for entry in metrics["hierarchy_retention"]]
    for key, value_key in (("geodesic_variance", "variance"), ("attribute_consistency", "lift"),
                           ("rank_stability", "spearman")):
        if isinstance(metrics.get(key), dict) and "per_class" in metrics[key]:
            metrics[key] = {**metrics[key],
                            "per_class": upgraded(metrics[key]["per_class"], value_key)}
    return {**analysis, "metrics": metrics}


@dataclass
class RunRecord:
    """Everything known about one run (or one analysed checkpoint).

    Attributes
    ----------
    name : str
        Run directory name (or analysis file stem).
    path : Path
        What was passed in.
    config : dict
        The training configuration (``{}`` when unknown).
    log : list of dict
        ``train_log.jsonl`` records in file order (``[]`` when there is no log).
    eval : dict or None
        ``eval.json``.
    analysis : dict or None
        The analysis JSON.
    """

    name: str
    path: Path
    config: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    eval: dict | None = None
    analysis: dict | None = None

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed")
        return int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None

    @property
    def epoch_records(self) -> list[dict]:
        return [r for r in self.log if r.get("kind") == "epoch"]

    @property
    def loss(self) -> str | None:
        return self.config.get("loss")


@dataclass
class RunGroup:
    """Runs of one configuration that differ only in seed (and file locations)."""

    name: str
    runs: list[RunRecord]

    @property
    def config(self) -> dict:
        """The shared configuration (seed and location keys dropped)."""
        return identity_config(self.runs[0].config)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]


def read_json_object(path: Path) -> dict:
    """The JSON object in ``path`` (a file some rascal command wrote), or a one-line error."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RascalError(f"{path} is not readable JSON ({type(exc).__name__}); "
                          "re-create it with the rascal command that writes it.") from None
    if not isinstance(obj, dict):
        raise RascalError(f"{path} holds a JSON {type(obj).__name__}, not an object; "
                          "re-create it with the rascal command that writes it.")
    return obj


def _fill_from_run_dir(record: RunRecord, run_dir: Path) -> None:
    if (run_dir / "config.json").is_file():
        record.config = read_json_object(run_dir / "config.json")
    record.log = read_jsonl(run_dir / "train_log.jsonl")
    if (run_dir / "eval.json").is_file():
        record.eval = read_json_object(run_dir / "eval.json")


def load_run(path: str | Path) -> RunRecord:
    """Load a run directory or an analysis JSON.

    Parameters
    ----------
    path : str or Path
        ``runs/<name>/`` (must contain ``config.json``) or a ``rascal.analysis/1`` JSON file.

    Returns
    -------
    RunRecord

    Raises
    ------
    RascalError
        If ``path`` is neither.
    """
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        record = RunRecord(name=path.resolve().name, path=path)
        _fill_from_run_dir(record, path)
        if (path / "analysis.json").is_file():
            record.analysis = current_per_class(read_json_object(path / "analysis.json"))
        return record
    if path.is_file() and path.suffix == ".json":
        obj = read_json_object(path)
        if obj.get("schema") == ANALYSIS_SCHEMA:
            return record_from_analysis(obj, path)
    raise RascalError(f"{path} is neither a run directory (with config.json) nor an analysis JSON "
                      f"(schema {ANALYSIS_SCHEMA}); pass runs/<name>/ or a file written by "
                      "`rascal analyze`.")


def record_from_analysis(analysis: dict, path: str | Path | None = None) -> RunRecord:
    """A record built around an analysis dict, with its run directory's files
    when it still exists."""
    source = analysis.get("source") or {}
    run_dir = source.get("run_dir")
    name = Path(run_dir).name if run_dir else Path(path or source.get("path") or "analysis").stem
    record = RunRecord(name=name, path=Path(path or source.get("path") or name),
                       config=dict(source.get("config") or {}),
                       analysis=current_per_class(analysis))
    if run_dir and Path(run_dir).is_dir():
        _fill_from_run_dir(record, Path(run_dir))
    return record


def identity_config(config: dict) -> dict:
    """``config`` without the keys that do not define the experiment (:data:`NON_IDENTITY_KEYS`)."""
    return {k: v for k, v in config.items() if k not in NON_IDENTITY_KEYS}


def _group_label(runs: list[RunRecord]) -> str:
    stems = {SEED_SUFFIX.sub("", r.name) or r.name for r in runs}
    return stems.pop() if len(stems) == 1 else runs[0].name


def group_runs(records: list[RunRecord]) -> list[RunGroup]:
    """Group records whose configurations are equal apart from :data:`NON_IDENTITY_KEYS`.

    Groups keep the order of their first record. A group is named by its run names with a
    seed suffix (``_s0``, ``-seed1``) removed when they agree, else by its first run; names
    that still collide get the loss appended, then a counter.

    Returns
    -------
    list of RunGroup
    """
    keyed: dict[str, list[RunRecord]] = {}
    for record in records:
        key = json.dumps(identity_config(record.config), sort_keys=True, default=str)
        if not record.config:
            key = f"__record_{id(record)}"  # an unknown configuration is only its own repeat
        keyed.setdefault(key, []).append(record)
    groups = [RunGroup(_group_label(runs), runs) for runs in keyed.values()]
    seen: dict[str, int] = {}
    for group in groups:
        if group.name in seen and group.runs[0].loss:
            group.name = f"{group.name} ({group.runs[0].loss})"
        seen[group.name] = seen.get(group.name, 0) + 1
        if seen[group.name] > 1:
            group.name = f"{group.name} #{seen[group.name]}"
    return groups


def find_baseline(groups: list[RunGroup], baseline: str | None) -> int:
    """Index of the baseline group: exact group name, else the one group whose loss
    or a run name matches.

    ``None`` means the first group.
    """
    if baseline is None:
        return 0
    for i, g in enumerate(groups):
        if g.name == baseline:
            return i
    hits = [i for i, g in enumerate(groups)
            if g.runs[0].loss == baseline or any(r.name == baseline for r in g.runs)]
    if len(hits) == 1:
        return hits[0]
    names = ", ".join(repr(g.name) for g in groups)
    if not hits:
        raise RascalError(f"No run group matches --baseline {baseline!r}; choose one of {names} "
                          "(or a loss name).")
    raise RascalError(f"--baseline {baseline!r} matches {len(hits)} groups; pass one exact group "
                      f"name of {names}.")


#: How the training monitor measures rank stability at each epoch end (:mod:`rascal_geom.monitor`).
MONITOR_PROVENANCE = ("training monitor: a fixed sample of the train split, projections, "
                      "previous epoch vs this one")


def analysis_provenance(analysis: dict) -> dict[str, str]:
    """The provenance of each analysis headline, from the file's protocol card (or its settings)."""
    settings = analysis.get("settings") or {}
    card = analysis.get("protocol") or {}
    split = card.get("split") or settings.get("split") or "unknown"
    features = card.get("features") or settings.get("embedding") or "unknown"
    knn = card.get("knn") or {}
    ks = settings.get("knn_ks") or [settings.get("k")]
    k = knn.get("headline_k") or (settings.get("k") if settings.get("k") in ks else ks[0])
    where = f"analysis: {split} split, {features} features"
    return {"knn_top1": f"{where}, leave-one-out, k={k}",
            "retention": f"{where}, within the coarse class, k\u2264{settings.get('k')}",
            "attribute_lift": f"{where}, within the class, "
                              f"k\u2264{min(settings.get('k') or 10, 10)}",
            "structure": where,
            "rank_stability": f"{where}, previous checkpoint vs this one"}


def headline_values(record: RunRecord) -> dict[str, float]:
    """The run's headline numbers, one entry per measurement, keyed ``metric|provenance``.

    ``metric`` is ``linear_top1``, ``knn_top1``, ``retention:<level>``, ``attribute_lift``,
    ``geodesic_variance``, ``collapse_ratio`` or ``rank_stability``; ``provenance`` says which file
    measured it and how (split, features, k). The same metric from two sources is two entries:
    ``eval.json``'s kNN (test split against the training bank, backbone features) is not the
    analysis' (leave-one-out on the analysed split), and the training monitor's rank stability
    (a train-split sample) is not the analysis' (two checkpoints on the analysed split). Missing
    numbers are left out.
    """
    out: dict[str, float] = {}

    def put(metric: str, provenance: str, value) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out[f"{metric}|{provenance}"] = float(value)

    ev = record.eval or {}
    card = ev.get("protocol") or {}
    linear, knn = ev.get("linear") or {}, ev.get("knn") or {}
    split = card.get("split", "test")
    put("linear_top1",
        f"eval.json: {split} split, backbone features, probe fitted on the train split "
                       f"({linear.get('protocol', 'unknown')} protocol)", linear.get("top1"))
    # eval.json files written before the protocol card used the same vote temperature.
    temperature = (card.get("knn") or {}).get("temperature", KNN_TEMPERATURE)
    put("knn_top1",
        f"eval.json: {split} split vs the train-split bank, backbone features, k={knn.get('k')}, "
                    f"T={temperature}", knn.get("top1"))
    if record.analysis:
        head = record.analysis.get("headline") or {}
        prov = analysis_provenance(record.analysis)
        put("knn_top1", prov["knn_top1"], head.get("knn_top1"))
        for level, value in (head.get("retention") or {}).items():
            put(f"retention:{level}", prov["retention"], value)
        put("attribute_lift", prov["attribute_lift"], head.get("attribute_lift"))
        for key in ("geodesic_variance", "collapse_ratio"):
            put(key, prov["structure"], head.get(key))
        put("rank_stability", prov["rank_stability"], head.get("rank_stability"))
    epochs = [r for r in record.epoch_records if r.get("rank_stability") is not None]
    if epochs:
        put("rank_stability", MONITOR_PROVENANCE, epochs[-1]["rank_stability"])
    return out
