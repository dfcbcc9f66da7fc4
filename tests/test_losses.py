"""RASCAL and its weight sources against a float64 loop restatement of spec/RASCAL.md."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy as scipy_entropy
from scipy.stats import rankdata

from rascal_train.errors import RascalError
from rascal_train.losses import RascalLoss, rascal_weights
from rascal_train.names import WEIGHT_SOURCES

TAU = 0.1


# --- the spec, restated with plain loops in float64 ---------------------------------------------

def ref_weights(z, y, c=None, cv=None, source="rank_agreement"):
    z = np.asarray(z, np.float64)
    n = len(y)
    w = np.zeros((n, n))
    for i in range(n):
        pos = [j for j in range(n) if j != i and y[j] == y[i]]
        if not pos:
            continue
        m = len(pos)
        uniform = np.full(m, 1.0 / m)
        s_t = np.array([z[i] @ z[j] for j in pos])
        rho_t = rankdata(-s_t, "average") - 1
        if m == 1:
            raw = np.ones(1)
        elif source == "uniform":
            raw = np.ones(m)
        elif source == "current_rank":
            raw = 1 - rho_t / (m - 1)
        elif source == "current_similarity":
            raw = 1 + s_t
        else:
            if c is None or not cv[i] or not all(cv[j] for j in pos):
                w[i, pos] = uniform
                continue
            cc = np.asarray(c, np.float64)
            rho_c = rankdata(-np.array([cc[i] @ cc[j] for j in pos]), "average") - 1
            delta = np.abs(rho_t - rho_c) / (m - 1)
            raw = 1 - delta if source == "rank_agreement" else (delta < 0.5).astype(float)
        w[i, pos] = uniform if raw.sum() <= 0 else raw / raw.sum()
    return w


def ref_loss(z, y, w, tau=TAU):
    z = np.asarray(z, np.float64)
    n = len(y)
    per = []
    for i in range(n):
        pos = [j for j in range(n) if j != i and y[j] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(z[i] @ z[a] / tau) for a in range(n) if a != i)
        per.append(-sum(w[i, p] * math.log(math.exp(z[i] @ z[p] / tau) / denom) for p in pos))
    return float(np.mean(per)) if per else 0.0


def supcon_eq2_loop(z, y, tau=TAU):
    """SupCon L_out (Khosla et al. 2020, Eq. 2) by a plain loop."""
    z = np.asarray(z, np.float64)
    n = len(y)
    per = []
    for i in range(n):
        pos = [j for j in range(n) if j != i and y[j] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(z[i] @ z[a] / tau) for a in range(n) if a != i)
        per.append(-np.mean([math.log(math.exp(z[i] @ z[p] / tau) / denom) for p in pos]))
    return float(np.mean(per))


def supcon_reference(features, labels, temperature, base_temperature):
    """The reference implementation's SupConLoss (HobbitLong/SupContrast, contrast_mode='all')."""
    batch_size = features.shape[0]
    labels = labels.contiguous().view(-1, 1)
    mask = torch.eq(labels, labels.T).float()
    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    anchor_feature, anchor_count = contrast_feature, contrast_count
    anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), temperature)
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = torch.scatter(torch.ones_like(mask), 1,
                                torch.arange(batch_size * anchor_count).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return loss.view(anchor_count, batch_size).mean()


# --- batches with every edge case ----------------------------------------------------------------

def make_batch(seed, n_img=10, views=2, dim=6, dtype=torch.float64, missing=(), singleton=True):
    """Views stacked view-major; the views of an image share one cache row (ties).

    Labels include a class with two images (|P| = 3 with 2 views), a singleton class (its views
    have |P| = 1), and, with ``views=1``, anchors without positives.
    """
    g = torch.Generator().manual_seed(seed)
    labels_img = torch.randint(0, 3, (n_img,), generator=g)
    if singleton:
        labels_img[0] = 7
    labels = labels_img.repeat(views)
    z = F.normalize(torch.randn(n_img * views, dim, generator=g, dtype=torch.float64), dim=1)
    cache_img = F.normalize(torch.randn(n_img, dim, generator=g, dtype=torch.float64), dim=1)
    cached = cache_img.repeat(views, 1)
    valid_img = torch.ones(n_img, dtype=torch.bool)
    valid_img[list(missing)] = False
    return z.to(dtype), labels, cached.to(dtype), valid_img.repeat(views)


CASES = [dict(seed=0), dict(seed=1, views=3), dict(seed=2, missing=(3,)),
         dict(seed=3, views=1, n_img=12), dict(seed=4, n_img=24, views=2, missing=(1, 5))]


@pytest.mark.parametrize("source", WEIGHT_SOURCES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_weights_match_loop_restatement(source, case):
    z, y, c, v = make_batch(**case)
    got = rascal_weights(z, y, c, v, source=source).numpy()
    want = ref_weights(z.numpy(), y.numpy(), c.numpy(), v.numpy(), source)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    has_pos = np.array([(y == y[i]).sum() > 1 for i in range(len(y))])
    np.testing.assert_allclose(got.sum(1), has_pos.astype(float), atol=1e-12)


@pytest.mark.parametrize("source", WEIGHT_SOURCES)
def test_gpu_rank_path_run_on_cpu_matches_loop_restatement(source, monkeypatch):
    from rascal_train import ranks

    monkeypatch.setattr(ranks, "_host_shortcuts", lambda values: False)
    z, y, c, v = make_batch(**CASES[-1])
    want = ref_weights(z.numpy(), y.numpy(), c.numpy(), v.numpy(), source)
    np.testing.assert_allclose(rascal_weights(z, y, c, v, source=source).numpy(), want,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("source", WEIGHT_SOURCES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_loss_matches_loop_restatement(source, case):
    z, y, c, v = make_batch(**case)
    got = RascalLoss(TAU, weights=source)(z, y, c, v).item()
    want = ref_loss(z.numpy(), y.numpy(),
                    ref_weights(z.numpy(), y.numpy(), c.numpy(), v.numpy(), source))
    assert got == pytest.approx(want, rel=1e-10)


def test_views_sharing_a_cache_row_tie_exactly():
    # Anchor 0 and four positives in 2-D; the cache puts views 1 and 2 (one image) on one row,
    # so their cached ranks must be the average (1.5), which changes δ and the weights.
    ang = torch.tensor([0.0, 0.3, 0.35, 0.9, 1.2], dtype=torch.float64)
    z = torch.stack([ang.cos(), ang.sin()], 1)
    c_ang = torch.tensor([0.0, 0.5, 0.5, 0.2, 1.0], dtype=torch.float64)
    c = torch.stack([c_ang.cos(), c_ang.sin()], 1)
    y = torch.zeros(5, dtype=torch.long)
    v = torch.ones(5, dtype=torch.bool)
    w = rascal_weights(z, y, c, v)[0]
    # current ranks of rows 1..4: 0,1,2,3; cached: row 3 first (0), rows 1,2 tie (1.5), row 4 (3)
    delta = torch.tensor([1.5, 0.5, 2.0, 0.0], dtype=torch.float64) / 3
    np.testing.assert_allclose(w[1:].numpy(), ((1 - delta) / (1 - delta).sum()).numpy(), rtol=1e-12)


def test_two_positives_swapped_fall_back_to_uniform():
    ang = torch.tensor([0.0, 0.2, 0.5], dtype=torch.float64)
    z = torch.stack([ang.cos(), ang.sin()], 1)
    c_ang = torch.tensor([0.0, 0.5, 0.2], dtype=torch.float64)   # the two positives swap ranks
    c = torch.stack([c_ang.cos(), c_ang.sin()], 1)
    y = torch.zeros(3, dtype=torch.long)
    v = torch.ones(3, dtype=torch.bool)
    for source in ("rank_agreement", "rank_agreement_hard"):
        loss = RascalLoss(weights=source)
        loss(z, y, c, v)
        np.testing.assert_allclose(rascal_weights(z, y, c, v, source)[0].numpy(), [0, 0.5, 0.5])
        assert loss.last_stats["uniform_fallback"].item() == pytest.approx(1.0)


def test_missing_cache_row_makes_every_anchor_that_sees_it_uniform():
    z, y, c, v = make_batch(seed=5, n_img=8, views=2)
    v[2] = False  # one view's cache row missing
    w = rascal_weights(z, y, c, v).numpy()
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        if pos and (i == 2 or 2 in pos):
            np.testing.assert_allclose(w[i, pos], 1 / len(pos))


def test_single_positive_gets_weight_one_for_every_source():
    z, y, c, v = make_batch(seed=6, n_img=5, views=2)
    y = torch.arange(5).repeat(2)  # every anchor's only positive is its other view
    for source in WEIGHT_SOURCES:
        w = rascal_weights(z, y, c, v, source)
        np.testing.assert_allclose(w.numpy(), np.roll(np.eye(10), 5, axis=1), atol=0)


def test_uniform_is_supcon_eq2_and_the_reference_implementation():
    z, y, c, v = make_batch(seed=7, n_img=16, views=2, singleton=False)
    got = RascalLoss(TAU, weights="uniform")(z, y).item()
    assert got == pytest.approx(supcon_eq2_loop(z.numpy(), y.numpy()), rel=1e-10)
    feats = torch.stack([z[:16], z[16:]], dim=1)   # [bsz, n_views, d]
    ref = supcon_reference(feats, y[:16], temperature=TAU, base_temperature=TAU).item()
    assert got == pytest.approx(ref, rel=1e-10)


def test_no_positive_anywhere_gives_zero_that_backpropagates():
    z = F.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1).requires_grad_()
    loss = RascalLoss()(z, torch.arange(6), z.detach(), torch.ones(6, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_anchors_without_positives_are_left_out_not_counted_as_zero():
    z, y, c, v = make_batch(seed=8, n_img=6, views=1, singleton=True)
    per = RascalLoss(weights="uniform", reduction="none")(z, y)
    no_pos = torch.tensor([(y == y[i]).sum() == 1 for i in range(len(y))])
    assert no_pos.any() and torch.isnan(per[no_pos]).all()
    assert RascalLoss(weights="uniform")(z, y).item() == pytest.approx(per[~no_pos].mean().item())


# --- the four propositions --------------------------------------------------------------------

@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
@pytest.mark.parametrize("source", ["rank_agreement", "current_rank", "rank_agreement_hard"])
def test_prop1_decomposition(dtype, tol, source):
    z, y, c, v = make_batch(seed=9, n_img=12, views=2, dtype=dtype)
    per = RascalLoss(TAU, weights=source, reduction="none")(z, y, c, v).double()
    w = rascal_weights(z, y, c, v, source).double()
    zz = z.double()
    s = zz @ zz.T / TAU
    s.fill_diagonal_(float("-inf"))
    q = torch.softmax(s, dim=1)
    for i in range(len(y)):
        pos = w[i] > 0
        if torch.isnan(per[i]):
            continue
        q_plus = q[i, pos].sum()
        q_hat = q[i, pos] / q_plus
        wi = w[i, pos]
        entropy = -(wi * wi.log()).sum()
        kl = (wi * (wi / q_hat).log()).sum()
        assert per[i].item() == pytest.approx((-q_plus.log() + entropy + kl).item(), rel=tol,
                                              abs=tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-4), (torch.float64, 1e-10)])
def test_prop2_gradient_and_prop4_bound(dtype, tol):
    z, y, c, v = make_batch(seed=10, n_img=12, views=2, dtype=dtype)
    w = rascal_weights(z, y, c, v).to(dtype)
    u = rascal_weights(z, y, source="uniform").to(dtype)

    def anchor_grad(i, source):
        zi = z[i].clone().requires_grad_()
        rows = torch.cat([z[:i], zi[None], z[i + 1:]])
        per = RascalLoss(TAU, weights=source, reduction="none")(rows, y, c, v)
        per[i].backward()
        return zi.grad

    s = z @ z.T / TAU
    s.fill_diagonal_(float("-inf"))
    q = torch.softmax(s, dim=1)
    checked = 0
    for i in range(len(y)):
        if w[i].sum() == 0:
            continue
        g = anchor_grad(i, "rank_agreement")
        expected = (q[i] @ z - w[i] @ z) / TAU
        torch.testing.assert_close(g, expected, rtol=tol, atol=tol)
        g_sup = anchor_grad(i, "uniform")
        bound = (w[i] - u[i]).abs().sum() / TAU
        assert (g - g_sup).norm() <= bound * (1 + 1e-5) + 1e-6
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prop3_equal_drifts_degenerate_to_supcon(dtype):
    # Anchor 0 with four positives: current ranks 0,1,2,3, cached ranks 1,0,3,2 -> δ = 1/3 each.
    cur = torch.tensor([0.0, 0.45, 0.64, 0.80, 0.93], dtype=torch.float64).acos()
    old = torch.tensor([0.0, 0.64, 0.45, 0.93, 0.80], dtype=torch.float64).acos()
    z = torch.stack([cur.cos(), cur.sin()], 1).to(dtype)
    c = torch.stack([old.cos(), old.sin()], 1).to(dtype)
    y = torch.zeros(5, dtype=torch.long)
    v = torch.ones(5, dtype=torch.bool)
    w = rascal_weights(z, y, c, v)
    torch.testing.assert_close(w[0], torch.tensor([0, 0.25, 0.25, 0.25, 0.25], dtype=dtype))
    loss = RascalLoss(TAU, reduction="none")
    per = loss(z, y, c, v)
    torch.testing.assert_close(per[0],
                               RascalLoss(TAU, weights="uniform", reduction="none")(z, y)[0])
    # identical embeddings: every δ is 0 and the whole batch is SupCon
    zb, yb, _, vb = make_batch(seed=11, dtype=dtype)
    torch.testing.assert_close(RascalLoss(TAU)(zb, yb, zb, vb),
                               RascalLoss(TAU, weights="uniform")(zb, yb))


@pytest.mark.parametrize("source", WEIGHT_SOURCES)
def test_bf16_inputs_run_and_stay_finite(source):
    z, y, c, v = make_batch(seed=12, n_img=16, views=2, dtype=torch.float32)
    zb = z.bfloat16().requires_grad_()
    loss = RascalLoss(weights=source)(zb, y, c.bfloat16(), v)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert zb.grad.dtype == torch.bfloat16 and torch.isfinite(zb.grad.float()).all()
    ref = RascalLoss(weights=source)(z, y, c, v)
    assert loss.item() == pytest.approx(ref.item(), rel=5e-2)


def test_cached_ranks_with_ties_between_different_cache_rows():
    # Cache rows on a coarse grid: distinct rows often have equal similarity to an anchor.
    g = torch.Generator().manual_seed(20)
    y = torch.randint(0, 3, (16,), generator=g).repeat(2)
    z = F.normalize(torch.randn(32, 3, generator=g, dtype=torch.float64), dim=1)
    c = torch.randint(-1, 2, (16, 3), generator=g).double().repeat(2, 1)
    c[c.abs().sum(1) == 0] = 1.0
    v = torch.ones(32, dtype=torch.bool)
    want = ref_weights(z.numpy(), y.numpy(), c.numpy(), v.numpy())
    np.testing.assert_allclose(rascal_weights(z, y, c, v).numpy(), want, rtol=1e-10, atol=1e-12)


def test_chunked_similarity_pass_and_backward_equal_one_chunk(monkeypatch):
    from rascal_train import losses

    z, y, c, v = make_batch(seed=21, n_img=20, views=2)
    upstream = torch.randn(40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def run():
        x = z.clone().requires_grad_()
        loss = RascalLoss(TAU, reduction="none")
        per = loss(x, y, c, v)
        torch.nan_to_num(per).mul(upstream).sum().backward()
        return per, x.grad, loss.last_stats

    per1, grad1, stats1 = run()
    monkeypatch.setattr(losses, "_CHUNK_ELEMS", {"cpu": 7 * 40})   # chunks of 7 rows
    per7, grad7, stats7 = run()
    torch.testing.assert_close(per7, per1, rtol=1e-12, atol=1e-12, equal_nan=True)
    torch.testing.assert_close(grad7, grad1, rtol=1e-12, atol=1e-12)
    for key in stats1:
        torch.testing.assert_close(stats7[key], stats1[key], rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("source", ["uniform", "rank_agreement"])
def test_recomputed_backward_passes_gradcheck(source):
    z, y, c, v = make_batch(seed=22, n_img=6, views=2)
    x = z.clone().requires_grad_()
    # Rank weights are piecewise constant in z: a tiny perturbation leaves them as they are, so
    # finite differences see the gradient with the weights held fixed, as the spec defines it.
    loss = RascalLoss(TAU, weights=source, reduction="none", track_stats=False)
    assert torch.autograd.gradcheck(lambda t: torch.nan_to_num(loss(t, y, c, v)), (x,),
                                    eps=1e-7, atol=1e-6, nondet_tol=0.0)


def _distinct_rows_cases():
    g = torch.Generator().manual_seed(18)
    rows = torch.randn(7, 5, generator=g)
    signed = torch.tensor([[0.0, 1.0], [-0.0, 1.0], [0.0, -0.0], [-0.0, 0.0], [0.0, 1.0]])
    extreme = torch.tensor([[3e38, -3e38, 1e-45], [-1e-45, 1e-40, 0.0], [3e38, -3e38, 1e-45]])
    return {"repeats": rows[torch.tensor([3, 0, 3, 6, 1, 0, 0, 2, 5, 4, 6])],
            "float64": torch.randn(9, 3, generator=g, dtype=torch.float64)[[0, 8, 0, 2, 8]],
            "signed_zeros": signed, "extremes": extreme, "one_row": rows[:1],
            "all_equal": rows[2].repeat(6, 1),
            # The same projection for different rows: 1 is lost against 1e30 (checked below).
            "collision": torch.tensor([[1e30, 1.0], [1e30, 2.0], [1e30, 1.0]])}


@pytest.mark.parametrize("case", list(_distinct_rows_cases()))
def test_distinct_rows_equal_torch_unique_up_to_the_order_of_the_groups(case, monkeypatch):
    from rascal_train import losses

    x = _distinct_rows_cases()[case]
    reference, fallbacks = losses._distinct_rows_reference, []
    ref_uniq, ref_inverse = reference(x)
    monkeypatch.setattr(losses, "_distinct_rows_reference",
                        lambda x: fallbacks.append(x) or reference(x))
    uniq, inverse = losses._distinct_rows(x)
    assert len(fallbacks) == (case == "collision")
    assert len(uniq) == len(ref_uniq) and torch.equal(uniq[inverse], x)
    # Group k of the reference is group to_fast[k] of the fast form, for every row.
    to_fast = torch.empty(len(ref_uniq), dtype=torch.long)
    to_fast[ref_inverse] = inverse
    assert torch.equal(to_fast[ref_inverse], inverse) and torch.equal(uniq[to_fast], ref_uniq)


@pytest.mark.parametrize("classes", ["balanced", "one_dominant"])
def test_block_weights_scale_with_many_classes_against_dense_reference(classes):
    # Larger batch, many classes of unequal size: the padded-block path against the loop.
    # "one_dominant" pads the per-class Gram matrices past the all-pairs product, so the cached
    # similarities take the all-pairs path instead.
    g = torch.Generator().manual_seed(13)
    if classes == "balanced":
        y = torch.randint(0, 9, (60,), generator=g)
    else:
        y = torch.cat([torch.zeros(40, dtype=torch.long), torch.arange(1, 11).repeat(2)])
    z = F.normalize(torch.randn(60, 5, generator=g, dtype=torch.float64), dim=1)
    c = F.normalize(z + 0.5 * torch.randn(60, 5, generator=g, dtype=torch.float64), dim=1)
    c[30:40] = c[20:30]   # some samples share a cache row (views of one image)
    v = torch.rand(60, generator=g) > 0.1
    want = ref_weights(z.numpy(), y.numpy(), c.numpy(), v.numpy())
    np.testing.assert_allclose(rascal_weights(z, y, c, v).numpy(), want, rtol=1e-10, atol=1e-12)


# --- statistics -----------------------------------------------------------------------------------

def test_logged_statistics_match_their_definitions():
    z, y, c, v = make_batch(seed=14, n_img=12, views=2)
    loss = RascalLoss(TAU)
    loss(z, y, c, v)
    st = {k: t.numpy() for k, t in loss.last_stats.items()}
    w = ref_weights(z.numpy(), y.numpy(), c.numpy(), v.numpy())
    n = len(y)
    zz = z.numpy()
    s = zz @ zz.T
    same = (y.numpy()[:, None] == y.numpy()[None]) & ~np.eye(n, dtype=bool)
    neg = ~same & ~np.eye(n, dtype=bool)
    has = same.any(1)
    ent = [scipy_entropy(w[i][same[i]]) for i in range(n) if has[i]]  # 0 log 0 = 0
    eff = [1 / (w[i][same[i]] ** 2).sum() for i in range(n) if has[i]]
    viol = sum((s[i][neg[i]] > s[i][same[i]].min()).sum() for i in range(n) if has[i])
    assert st["pos_per_anchor"] == pytest.approx(same.sum(1)[has].mean())
    assert st["weight_entropy"] == pytest.approx(np.mean(ent))
    assert st["eff_positives"] == pytest.approx(np.mean(eff))
    assert st["pos_sim"] == pytest.approx(s[same].mean())
    assert st["neg_sim"] == pytest.approx(s[neg].mean())
    assert st["sim_gap"] == pytest.approx(s[same].mean() - s[neg].mean())
    assert st["margin_violation"] == pytest.approx(viol / neg[has].sum())
    # drift: mean δ over positive pairs of anchors whose cache rows are valid (all valid here)
    deltas = []
    for i in range(n):
        pos = np.flatnonzero(same[i])
        if len(pos) < 2:
            deltas += [0.0] * len(pos)
            continue
        rt = rankdata(-s[i, pos]) - 1
        cc = c.numpy()
        rc = rankdata(-(cc[i] @ cc[pos].T)) - 1
        deltas += list(np.abs(rt - rc) / (len(pos) - 1))
    assert st["drift"] == pytest.approx(np.mean(deltas))
    hist, _ = np.histogram(1 - np.array(deltas), bins=20, range=(0, 1))
    np.testing.assert_array_equal(st["weight_hist"], hist)
    assert st["uniform_fallback"] == pytest.approx(0.0)


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda z, y, c, v: RascalLoss()(z[0], y, c, v), "2-D"),
    (lambda z, y, c, v: RascalLoss()(z, y[:-1], c, v), "one label per row"),
    (lambda z, y, c, v: RascalLoss()(z, y.float(), c, v), "integers"),
    (lambda z, y, c, v: RascalLoss()(z, y, c, None), "without cached_valid"),
    (lambda z, y, c, v: RascalLoss()(z, y, c[:-1], v), "shape of z"),
    (lambda z, y, c, v: RascalLoss()(z, y), "needs cached rows"),
    (lambda z, y, c, v: RascalLoss(temperature=-1), "must be a float in"),
    (lambda z, y, c, v: RascalLoss(weights="nope"), "must be one of"),
])
def test_bad_input_raises_one_clear_line(call, match):
    z, y, c, v = make_batch(seed=15)
    with pytest.raises(RascalError, match=match) as info:
        call(z, y, c, v)
    assert "\n" not in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("source", WEIGHT_SOURCES)
def test_cuda_matches_cpu(source):
    z, y, c, v = make_batch(seed=17, n_img=64, views=2)
    cpu = RascalLoss(TAU, weights=source)(z, y, c, v)
    gpu = RascalLoss(TAU, weights=source)(z.cuda(), y.cuda(), c.cuda(), v.cuda())
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-10)
    torch.testing.assert_close(rascal_weights(z.cuda(), y.cuda(), c.cuda(), v.cuda(), source).cpu(),
                               rascal_weights(z, y, c, v, source), rtol=1e-10, atol=1e-12)


# --- autocast -------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["uniform", "current_rank", "rank_agreement"])
def test_loss_inside_autocast_is_the_float32_loss(source):
    # A user's loop may call the loss inside bf16 autocast; CPU autocast lowers matmuls to bf16 as
    # CUDA's does, which would tie similarities 1e-3 apart and move the loss by ~1e-2.
    z, y, c, v = make_batch(seed=21, n_img=48, views=2, dim=32, dtype=torch.float32)
    z_plain, z_cast = z.clone().requires_grad_(), z.clone().requires_grad_()
    plain = RascalLoss(TAU, weights=source)(z_plain, y, c, v)
    plain.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = RascalLoss(TAU, weights=source)(z_cast, y, c, v)
        cast.backward()  # backward inside the region too: it must not recompute in bf16
    assert cast.dtype == torch.float32 and cast.item() == pytest.approx(plain.item(), rel=1e-6)
    torch.testing.assert_close(z_cast.grad, z_plain.grad, rtol=1e-5, atol=1e-7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast_w = rascal_weights(z, y, c, v, source)
    torch.testing.assert_close(cast_w, rascal_weights(z, y, c, v, source), rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("source", ["uniform", "rank_agreement"])
def test_cuda_float32_loss_and_gradient_match_cpu_past_one_chunk(source):
    # N = 9,000 > 8,192: more than one row chunk on the GPU; float32, d = 128, 100 classes, with
    # the gradient, as in training (TF32 matmuls are off by default in torch).
    g = torch.Generator().manual_seed(5)
    n_img, dim = 4500, 128
    y = torch.randint(0, 100, (n_img,), generator=g).repeat(2)
    z = F.normalize(torch.randn(2 * n_img, dim, generator=g), dim=1)
    c = F.normalize(torch.randn(n_img, dim, generator=g), dim=1).repeat(2, 1)
    v = torch.ones(2 * n_img, dtype=torch.bool)
    grads, losses = [], []
    for device in ("cpu", "cuda"):
        zz = z.to(device).requires_grad_()
        loss = RascalLoss(TAU, weights=source)(zz, y.to(device), c.to(device), v.to(device))
        loss.backward()
        losses.append(loss.item())
        grads.append(zz.grad.cpu())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loss_inside_bf16_autocast_is_float32():
    z, y, c, v = make_batch(seed=22, n_img=512, views=2, dim=128, dtype=torch.float32)
    z, y, c, v = z.cuda(), y.cuda(), c.cuda(), v.cuda()
    plain = RascalLoss(TAU)(z, y, c, v)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        cast = RascalLoss(TAU)(z, y, c, v)
    assert cast.dtype == torch.float32 and cast.item() == pytest.approx(plain.item(), rel=1e-6)
