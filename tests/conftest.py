"""Tests not marked ``gpu`` run on the CPU on every machine, GPU or not.

Their expected values (fp32 references at 1e-4, bit-identical resumes) are CPU facts; on a GPU
machine ``device="auto"`` would otherwise mean CUDA with bf16 and channels-last. CUDA's
behaviour is tested by the ``gpu``-marked tests, which see the real device.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _cpu_unless_marked_gpu(request, monkeypatch):
    if request.node.get_closest_marker("gpu") is None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
