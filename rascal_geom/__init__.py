"""Analysis side of rascal: embeddings, neighbour search, structure metrics, hierarchies, reports,
the training-time geometry monitor, and the workflows that train, evaluate and report."""
