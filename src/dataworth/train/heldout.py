"""Held-out learning curves: test and OOD loss and accuracy every `train.eval_every` steps.

The training loop calls a `HeldOutCurves` at its history rows (loop.py's `evaluate` hook); what it
returns becomes columns of those rows (history.parquet's test_loss ... ood_accuracy, MLflow's
heldout_* step series), so "when does augmentation start to pay off" is a chart. The final
metrics stay the evaluate stage's, on the whole sets after training: these curves are watched,
never used to stop or select.

Cost: a fixed random subset of each set (train.eval_samples, drawn once with a fixed seed, so
every point of every run is measured on the same samples) already on the device, in eval-sized
batches without gradients, and one forward for every run of a pack (the packed model takes the
same batch in each run's channel block). docs/tracking.md gives the overhead measured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HELDOUT_SETS = ("test", "ood")
HELDOUT_COLUMNS = tuple(f"{name}_{what}" for name in HELDOUT_SETS for what in ("loss", "accuracy"))
# The subsets are the same for every run of every study of a dataset.
SUBSET_SEED = 0


def fixed_subset(size: int, samples: int, device) -> torch.Tensor:
    """Indices of at most `samples` of `size` items, the same on every call (sorted: reads stay in order)."""
    if samples >= size:
        return torch.arange(size, device=device)
    gen = torch.Generator().manual_seed(SUBSET_SEED)
    return torch.randperm(size, generator=gen)[:samples].sort().values.to(device)


class HeldOutCurves:
    """Evaluates the network being trained (one run, or a pack of k runs) on held-out sets."""

    def __init__(self, data, every: int, samples: int, batch_size: int):
        self.every, self.batch_size = every, batch_size
        self.sets = {}
        for name in HELDOUT_SETS:
            x, y = data.x[name], data.y[name]
            keep = fixed_subset(len(y), samples, y.device)
            self.sets[name] = (x[keep], y[keep])
        self.eval_input = data.eval_input  # stored batch -> network input (pixel datasets normalise)

    def due(self, step: int, steps: int) -> bool:
        return step % self.every == 0 or step == steps

    @torch.no_grad()
    def __call__(self, network: nn.Module, k: int, step: int, steps: int, layout=lambda batch: batch) -> list[dict]:
        """One dict of HELDOUT_COLUMNS per run at an evaluation step, else k empty dicts.

        `network` maps (N, k * C, ...) to (N, k * classes): run i's input and logits are channel
        block i (k = 1: a plain classifier). Its train/eval mode is restored afterwards."""
        if not self.due(step, steps):
            return [{} for _ in range(k)]
        was_training = network.training
        network.eval()
        rows = [{} for _ in range(k)]
        for name, (x, y) in self.sets.items():
            loss, correct = self._sums(network, k, x, y, layout)
            for i in range(k):
                rows[i][f"{name}_loss"] = loss[i] / len(y)
                rows[i][f"{name}_accuracy"] = correct[i] / len(y)
        network.train(was_training)
        return rows

    def _sums(self, network, k, x, y, layout) -> tuple[list[float], list[int]]:
        use_amp = x.device.type == "cuda"
        loss = torch.zeros(k, device=x.device, dtype=torch.float64)
        correct = torch.zeros(k, device=x.device, dtype=torch.int64)
        for start in range(0, len(y), self.batch_size):
            xb, yb = self.eval_input(x[start:start + self.batch_size]), y[start:start + self.batch_size]
            if k > 1:
                xb = torch.cat([xb] * k, dim=1)  # the same batch in every run's channel block
            with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = network(layout(xb))
            logits = logits.float().view(len(yb), k, -1)
            targets = yb.view(-1, 1).expand(-1, k)
            loss += F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").sum(0).double()
            correct += (logits.argmax(-1) == targets).sum(0)
        return loss.tolist(), correct.tolist()  # one host sync per set


def heldout_curves(run: dict, data) -> HeldOutCurves | None:
    """The run's held-out evaluator, when train.eval_every asks for one and the run trains a classifier."""
    from dataworth.methods import method_of

    every = run["train"].get("eval_every", 0)
    if not every or not method_of(run).uses_labels:
        return None
    return HeldOutCurves(data, every, run["train"].get("eval_samples", 2048), run["eval"]["batch_size"])
