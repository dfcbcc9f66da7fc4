"""Data-parallel training on CPU (gloo, 2 processes): the gradients equal one process's on the
concatenated batch, the cache stays identical on every rank, and only rank 0 writes the run."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rascal_train.cache import EmbeddingCache
from rascal_train.engine import contrastive_loss
from rascal_train.losses import RascalLoss
from rascal_train.models import build_model

B, WORLD = 8, 2


def _batch():
    gen = torch.Generator().manual_seed(0)
    v1, v2 = torch.randn(B, 3, 16, 16, generator=gen), torch.randn(B, 3, 16, 16, generator=gen)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    return v1, v2, labels, torch.arange(B)


def _model():
    torch.manual_seed(0)
    # eval mode: BatchNorm uses its running statistics, as SyncBatchNorm would make the batch
    # statistics global on CUDA (SyncBatchNorm has no CPU kernel); everything else is trained.
    return build_model({"arch": "small_cnn", "loss": "rascal", "proj_dim": 16}).eval()


def _step(model, cache, v1, v2, labels, ids):
    """Two steps: the second one reads cache rows that the first one wrote."""
    loss_fn = RascalLoss(0.1, "rank_agreement")
    for _ in range(2):
        model.zero_grad(set_to_none=True)
        loss, z, gids = contrastive_loss(model, loss_fn, v1, v2, labels, ids, cache)
        loss.backward()
        cache.update(gids, z)
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _worker(rank, port, out_dir, run_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        v1, v2, labels, ids = _batch()
        part = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
        model = torch.nn.parallel.DistributedDataParallel(_model())
        cache = EmbeddingCache(B, 16)
        loss, grads = _step(model, cache, v1[part], v2[part], labels[part], ids[part])
        torch.save({"loss": loss, "grads": {n.removeprefix("module."): g for n, g in grads.items()},
                    "cache": cache.state_dict()}, os.path.join(out_dir, f"rank{rank}.pt"))
        # the engine itself under torchrun-like conditions: runs, and only rank 0 writes
        from rascal_train.engine import train
        from test_train import TINY

        train({"dataset": TINY, "loss": "rascal", "epochs": 1, "batch_size": 16, "limit": 32,
               "monitor": False, "device": "cpu", "out": run_dir}, progress=False)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gradients_equal_one_process_on_the_global_batch(tmp_path):
    run_dir = tmp_path / "run"
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), str(run_dir)), nprocs=WORLD, join=True)

    cache = EmbeddingCache(B, 16)
    loss, grads = _step(_model(), cache, *_batch())
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for result in ranks:
        assert torch.allclose(result["loss"], loss, rtol=1e-5, atol=1e-6)
        for name, grad in grads.items():
            assert torch.allclose(result["grads"][name], grad, rtol=1e-4, atol=1e-6), name
        assert torch.equal(result["cache"]["valid"], cache.valid)
        assert torch.allclose(result["cache"]["rows"], cache.rows, atol=1e-6)
    assert torch.equal(ranks[0]["cache"]["rows"], ranks[1]["cache"]["rows"])  # identical replicas

    from rascal_train.files import load_checkpoint

    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2 and ckpt["rng"]["world_size"] == WORLD
    lines = (run_dir / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == 1  # one epoch record (2 steps < log_every): rank 1 wrote nothing


def _torchrun_worker(rank, port, run_dir):
    # What torchrun sets; the engine joins the NCCL group and picks cuda:LOCAL_RANK itself.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    from rascal_geom.monitor import GeometryMonitor
    from rascal_train.engine import train
    from test_train import TINY

    train({"dataset": TINY, "loss": "rascal", "epochs": 1, "batch_size": 16, "limit": 32,
           "monitor": True, "device": "cuda", "out": run_dir}, progress=False,
          callbacks=[GeometryMonitor()])


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_nccl_run_on_two_gpus(tmp_path):
    mp.spawn(_torchrun_worker, args=(_free_port(), str(tmp_path / "run")), nprocs=WORLD, join=True)
    from rascal_train.files import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["rng"]["world_size"] == WORLD
