"""Training side of rascal: the RASCAL loss, its embedding cache, datasets, models, the engine."""

__version__ = "0.1.0"
