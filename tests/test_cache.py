"""EmbeddingCache: what each policy reads, view averaging, and state round-trips."""

import io

import pytest
import torch
import torch.nn.functional as F

from rascal_train.cache import EmbeddingCache
from rascal_train.errors import RascalError


def rows(seed, n, d=4):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_missing_until_first_seen_then_the_normalised_mean_of_views():
    cache = EmbeddingCache(6, 4)
    r, valid = cache.lookup(torch.arange(6))
    assert not valid.any()
    v1, v2 = rows(0, 2), rows(1, 2)
    ids = torch.tensor([1, 4, 1, 4])  # two views of samples 1 and 4
    cache.update(ids, torch.cat([v1, v2]))
    r, valid = cache.lookup(torch.tensor([1, 4, 0]))
    assert valid.tolist() == [True, True, False]
    torch.testing.assert_close(r[:2], F.normalize(v1 + v2, dim=1))


def test_last_seen_reads_the_previous_visit():
    cache = EmbeddingCache(3, 4, policy="last_seen")
    a, b = rows(2, 1), rows(3, 1)
    cache.update(torch.tensor([0]), a)
    torch.testing.assert_close(cache.lookup(torch.tensor([0]))[0], a)
    cache.update(torch.tensor([0]), b)  # a later visit in the same epoch is visible at once
    torch.testing.assert_close(cache.lookup(torch.tensor([0]))[0], b)
    cache.end_epoch()
    torch.testing.assert_close(cache.lookup(torch.tensor([0]))[0], b)


def test_epoch_end_reads_only_the_previous_epochs_snapshot():
    cache = EmbeddingCache(3, 4, policy="epoch_end")
    a, b = rows(4, 2), rows(5, 1)
    cache.update(torch.tensor([0, 1]), a)
    assert not cache.lookup(torch.tensor([0, 1]))[1].any()   # nothing published in epoch 1
    cache.end_epoch()
    r, valid = cache.lookup(torch.tensor([0, 1]))
    assert valid.all()
    torch.testing.assert_close(r, a)
    cache.update(torch.tensor([0]), b)                        # epoch 2 writes ...
    torch.testing.assert_close(cache.lookup(torch.tensor([0]))[0], a[:1])  # ... stay unseen
    cache.end_epoch()
    r, _ = cache.lookup(torch.tensor([0, 1]))
    torch.testing.assert_close(r, torch.cat([b, a[1:]]))      # sample 1, unseen, keeps its row


@pytest.mark.parametrize("policy", ["last_seen", "epoch_end"])
def test_state_round_trips_through_a_weights_only_checkpoint(policy):
    cache = EmbeddingCache(5, 4, policy=policy)
    cache.update(torch.tensor([0, 3]), rows(6, 2))
    cache.end_epoch()
    cache.update(torch.tensor([1]), rows(7, 1))
    buf = io.BytesIO()
    torch.save(cache.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    other = EmbeddingCache(5, 4, policy=policy)
    other.load_state_dict(state)
    ids = torch.arange(5)
    for x, y in zip(cache.lookup(ids), other.lookup(ids)):
        assert torch.equal(x, y)
    cache.end_epoch()
    other.end_epoch()
    for x, y in zip(cache.lookup(ids), other.lookup(ids)):
        assert torch.equal(x, y)


def test_bad_input_is_one_clear_line():
    with pytest.raises(RascalError, match="policy"):
        EmbeddingCache(3, 4, policy="weekly")
    cache = EmbeddingCache(3, 4)
    with pytest.raises(RascalError, match=r"ids must lie in \[0, 3\)"):
        cache.lookup(torch.tensor([3]))
    with pytest.raises(RascalError, match="shape"):
        cache.update(torch.tensor([0]), torch.zeros(1, 5))
    with pytest.raises(RascalError, match="resume"):
        EmbeddingCache(3, 4, policy="epoch_end").load_state_dict(cache.state_dict())
