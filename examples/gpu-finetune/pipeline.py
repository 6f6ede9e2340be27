"""A small PyTorch fine-tuning step that uses a GPU when there is one and the CPU otherwise.

``finetune`` is declared with ``gpus=1``: on Argo it requests one ``nvidia.com/gpu`` (the manifest's GPU
resource), tolerates the GPU taint and lands on the GPU nodes; locally it runs on whatever this machine has.
torch is imported inside the step, so rendering (``mlstack render examples/gpu-finetune --argo``) does not
need it; running without torch fails with the command that installs it.
"""

from __future__ import annotations

from typing import Any

from mlstack import Pipeline

pipeline = Pipeline(
    "gpu-finetune",
    params={"epochs": 5, "lr": 0.01, "seed": 0, "samples": 2048},
    description="Fine-tune a small PyTorch model on a GPU (CPU fallback)",
)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        from mlstack.errors import MissingExtraError

        err = MissingExtraError("torch", "examples", "the gpu-finetune example")
        err.fix = "pip install torch (CPU-only wheel: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
        raise err from None
    return torch


@pipeline.step(gpus=1, cpu=4, memory="16Gi", timeout=3600, retries=1)
def finetune(epochs: int, lr: float, seed: int, samples: int) -> dict[str, Any]:
    """Train a two-layer network on a synthetic regression task; save its weights as an artifact."""
    import io

    torch = _torch()
    import mlstack.artifacts as artifacts

    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(samples, 16)
    y = (x @ torch.linspace(-1, 1, 16)).unsqueeze(1) + 0.1 * torch.randn(samples, 1)
    x, y = x.to(device), y.to(device)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        for i in range(0, samples, 256):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[i : i + 256]), y[i : i + 256])
            loss.backward()
            opt.step()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    v = artifacts.put("gpu-finetune-model", buf.getvalue(), metadata={"device": device, "loss": float(loss)})
    return {"device": device, "loss": float(loss), "version": v.version}


@pipeline.step(cpu=0.5, memory="256Mi")
def report(finetune: dict[str, Any]) -> str:
    """A one-line summary (a CPU step: it runs off the GPU nodes)."""
    return f"model v{finetune['version']} trained on {finetune['device']}, final loss {finetune['loss']:.4f}"
