from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.inference_mode()
def evaluate_split(model, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` (in eval mode) on (x, y)."""
    model.eval()
    use_amp = x.device.type == "cuda"
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum.item() / len(y), correct.item() / len(y)
