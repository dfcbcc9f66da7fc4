"""Structure metrics: each takes NumPy arrays or tensors and returns floats and per-class arrays.

The report, the training log and the tests all call these same functions.
"""

from rascal_geom.metrics.attribute_consistency import attribute_consistency
from rascal_geom.metrics.calibration import calibration
from rascal_geom.metrics.collapse import cdnv, classifier_collapse
from rascal_geom.metrics.geodesic_variance import geodesic_variance, karcher_means
from rascal_geom.metrics.geometry import (
    alignment,
    class_alignment,
    effective_rank,
    geometry_summary,
    neural_collapse,
    similarity_gap,
    trustworthiness,
    uniformity,
)
from rascal_geom.metrics.hierarchy_retention import hierarchy_retention
from rascal_geom.metrics.knn import knn_accuracies, knn_accuracy, knn_vote
from rascal_geom.metrics.linear_probe import (
    LinearProbe,
    fit_linear_probe,
    holdout_probe_accuracy,
    linear_probe_accuracy,
)
from rascal_geom.metrics.rank_stability import average_ranks, rank_stability
from rascal_geom.metrics.retrieval import retrieval_k, retrieval_metrics, within_coarse_retrieval
from rascal_geom.metrics.similarity import cka, cka_matrix, minibatch_cka, shape_distances
from rascal_geom.metrics.spectrum import rankme

__all__ = [
    "LinearProbe",
    "alignment",
    "attribute_consistency",
    "average_ranks",
    "calibration",
    "cdnv",
    "cka",
    "cka_matrix",
    "class_alignment",
    "classifier_collapse",
    "effective_rank",
    "fit_linear_probe",
    "geodesic_variance",
    "geometry_summary",
    "hierarchy_retention",
    "holdout_probe_accuracy",
    "karcher_means",
    "knn_accuracies",
    "knn_accuracy",
    "knn_vote",
    "linear_probe_accuracy",
    "minibatch_cka",
    "neural_collapse",
    "rank_stability",
    "rankme",
    "retrieval_k",
    "retrieval_metrics",
    "shape_distances",
    "similarity_gap",
    "trustworthiness",
    "uniformity",
    "within_coarse_retrieval",
]
