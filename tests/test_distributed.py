"""The gradient-carrying all-gather: identity in one process, exact gradients over 2 gloo ranks."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rascal_train.distributed import gather_batch
from rascal_train.losses import RascalLoss


def test_single_process_gather_is_the_identity():
    z = torch.randn(4, 3, requires_grad=True)
    y, ids = torch.arange(4), torch.arange(4)
    gz, gy, gi = gather_batch(z, y, ids)
    assert gz is z and gy is y and gi is ids


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, z_all, y_all, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        n = z_all.shape[0] // world
        local = z_all[rank * n:(rank + 1) * n].clone().requires_grad_()
        gz, gy, _ = gather_batch(local, y_all[rank * n:(rank + 1) * n], torch.arange(n) + rank * n)
        assert torch.equal(gy, y_all)
        loss = RascalLoss(weights="uniform")(gz, gy)
        loss.backward()
        # What DDP does to parameter gradients: average over ranks.
        out[rank] = local.grad / world
    finally:
        dist.destroy_process_group()


def test_two_ranks_get_the_gradient_of_one_process_on_the_whole_batch():
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(8, 5, generator=g, dtype=torch.float64), dim=1)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 2, 1])
    single = z.clone().requires_grad_()
    RascalLoss(weights="uniform")(single, y).backward()
    out = torch.zeros(2, 4, 5, dtype=torch.float64).share_memory_()
    mp.spawn(_worker, args=(2, _free_port(), z, y, out), nprocs=2, join=True)
    torch.testing.assert_close(torch.cat([out[0], out[1]]), single.grad, rtol=1e-12, atol=1e-12)
