"""The fine-tuning example across several nodes: data-parallel training with ``torch.distributed``.

``train`` is declared with ``nodes=2, gpus=1``: two workers, one GPU each.

- Locally (``mlstack run examples/gpu-finetune/multinode.py --local``) the runner starts two processes on
  loopback with torchrun's variables; they train on the CPU with the ``gloo`` backend.
- On Argo (``mlstack render examples/gpu-finetune/multinode.py --argo``) the step becomes a JobSet of two pods
  on the GPU pool (the cluster needs the JobSet controller: ``EksGpuCluster(..., jobset=True)``); they find
  rank 0 through the JobSet's headless service and use ``nccl`` when they see a GPU.

Every worker trains on its own shard of the data; DistributedDataParallel averages the gradients across the
workers after each batch, so all of them hold the same weights. Rank 0 saves the model as an artifact and its
return value is the step's result (the other workers' are dropped); ``report`` reads it like any result.
"""

from __future__ import annotations

import os
from typing import Any

from mlstack import Pipeline

pipeline = Pipeline(
    "gpu-finetune-multinode",
    params={"epochs": 5, "lr": 0.01, "seed": 0, "samples": 4096},
    description="Fine-tune a small PyTorch model data-parallel across nodes (JobSet on Argo)",
)


@pipeline.step(gpus=1, nodes=2, cpu=4, memory="16Gi", timeout=3600, retries=1)
def train(epochs: int, lr: float, seed: int, samples: int) -> dict[str, Any]:
    """DDP training on a synthetic regression task; rank 0 saves the weights as an artifact."""
    import io

    try:
        import torch
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel
    except ImportError:
        from mlstack.errors import MissingExtraError

        raise MissingExtraError("torch", "examples", "the gpu-finetune multinode example") from None
    import mlstack.artifacts as artifacts

    cuda = torch.cuda.is_available()
    # env:// reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE (set by mlstack locally and in the JobSet)
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda else "cpu")
    torch.manual_seed(seed)  # the same data everywhere; each rank takes its own shard
    x = torch.randn(samples, 16)
    y = (x @ torch.linspace(-1, 1, 16)).unsqueeze(1) + 0.1 * torch.randn(samples, 1)
    x, y = x[rank::world].to(device), y[rank::world].to(device)
    torch.manual_seed(seed + 1)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)).to(device)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    opt = torch.optim.Adam(ddp.parameters(), lr=lr)
    loss = torch.tensor(0.0, device=device)
    for _ in range(epochs):
        for i in range(0, len(x), 128):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(ddp(x[i : i + 128]), y[i : i + 128])
            loss.backward()  # gradients averaged across every worker here
            opt.step()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss = float(mean_loss) / world
    # proof the replicas agree: the sum of the weights, gathered from every rank
    checksum = torch.tensor([sum(float(p.sum()) for p in model.parameters())], device=device)
    sums = [torch.zeros(1, device=device) for _ in range(world)]
    dist.all_gather(sums, checksum)
    dist.destroy_process_group()
    out: dict[str, Any] = {
        "workers": world,
        "device": device.type,
        "loss": mean_loss,
        "replicas_agree": max(float(s) for s in sums) - min(float(s) for s in sums) < 1e-4,
    }
    if rank == 0:
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        v = artifacts.put(
            "gpu-finetune-model",
            buf.getvalue(),
            metadata={"device": device.type, "loss": mean_loss, "workers": world},
        )
        out["version"] = v.version
    return out


@pipeline.step(cpu=0.5, memory="256Mi")
def report(train: dict[str, Any]) -> str:
    """A one-line summary (a CPU step, off the GPU nodes): it reads the multi-node step's result."""
    agree = "in sync" if train["replicas_agree"] else "OUT OF SYNC"
    return (
        f"model v{train['version']} trained by {train['workers']} workers on {train['device']} "
        f"(replicas {agree}), mean final loss {train['loss']:.4f}"
    )
