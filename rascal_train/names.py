"""The fixed sets of names a user chooses from, each defined here and nowhere else.

The modules that act on a name validate against these tuples (the loss in ``models``, the weight
source in ``losses``, the cache policy in ``cache``, the precision in ``devices``, all of them in
``config``), and the CLI's ``click.Choice``s are built from them. This module imports nothing,
so ``rascal --help`` lists the choices without loading torch. ``tests/test_names.py`` checks that
every name here is accepted where it is used, so a new loss or weight source added in one place
and not the other fails there.

Names that code registers by decorator (architectures, datasets, hierarchies) live in their
registries instead; the hierarchy registry (``rascal_geom.hierarchies``) is torch-free too.
"""

#: Training losses: cross-entropy (a linear classifier on the features) and the contrastive three.
LOSSES = ("ce", "supcon", "rascal", "simclr")
#: RASCAL's positive-weight sources, the ablation axis; ``uniform`` is SupCon.
WEIGHT_SOURCES = ("uniform", "current_rank", "current_similarity", "rank_agreement",
                  "rank_agreement_hard")
#: The embedding cache's read policies (``rascal_train.cache``).
CACHE_POLICIES = ("last_seen", "epoch_end")
#: Autocast precision on CUDA (``rascal_train.devices.autocast_dtype``).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Which rows of a model are embedded and analysed: the projection head's or the backbone's.
EMBEDDINGS = ("projection", "feature")
#: Linear-probe protocols of ``rascal eval``.
PROBE_PROTOCOLS = ("full_batch", "supcon")
