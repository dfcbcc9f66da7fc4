"""Analysis side of rascal: embeddings, neighbour search, structure metrics, hierarchies, reports."""
