"""Objectives: what the one training loop (loop.py) minimises, per method.

An objective is a module holding everything a method trains (and, for BYOL, the EMA target),
so the loop's optimizer, schedule, checkpoint and divergence check serve every method alike:

    losses, correct = objective.losses(batches, layout, amp)  # one loss per member (run): (K,)
    ... optimizer step on losses.sum() ...
    objective.after_step(step, steps)                          # e.g. BYOL's target update

The objectives here train one run (K = 1) and define `loss` for its one batch; train/packed.py
has the objective of K runs trained together as one grouped model.

`objective.network` is what the run saves as model.pt and evaluation reads: the classifier of
a supervised run, the encoder + projector (`SSLNetwork`) of a self-supervised one.
Self-supervised objectives draw two views of each sample from the augmentation policy, one
call each, so each view has its own per-sample random parameters; they never see labels.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from dataworth.augment.views import map_views
from dataworth.models.ssl import SSLNetwork, build_ssl_network, mlp_head
from dataworth.train.ssl_losses import BYOLLoss, NTXentLoss, VICRegLoss


class Objective(nn.Module):
    uses_labels: bool = False
    network: nn.Module

    def losses(self, batches: list[tuple], layout, amp: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The loss of each member's batch (K,), and each one's count of correct predictions (K,;
        None without labels). `batches` holds one (x, y, policy, gen) per member: its un-augmented
        batch, labels (None for self-supervised runs), augmentation policy and generator; `layout`
        puts an augmented batch in the layout the network runs fastest in."""
        (x, y, policy, gen), = batches
        in_layout = map_views(policy, lambda view: lambda batch, g: layout(view(batch, g)))
        loss, correct = self.loss(x, y, in_layout, gen, amp)
        return loss.view(1), None if correct is None else correct.view(1)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None, policy, gen: torch.Generator,
             amp: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The loss of one batch, and the count of correct predictions (None without labels)."""
        raise NotImplementedError

    def after_step(self, step: int, steps: int) -> None:
        """Called after optimizer step `step` (1-based) of `steps`."""


def _autocast(x: torch.Tensor, amp: bool):
    return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp)


class Supervised(Objective):
    """Cross-entropy of the classifier on the augmented batch."""

    uses_labels = True

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0):
        super().__init__()
        self.network = model
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def loss(self, x, y, policy, gen, amp):
        xb = policy(x, gen)
        with _autocast(x, amp):
            logits = self.network(xb)
        loss = self.cross_entropy(logits.float(), y)
        return loss, (logits.detach().argmax(1) == y).sum()


def two_views(x: torch.Tensor, policy, gen: torch.Generator) -> torch.Tensor:
    """Both views of the batch stacked, [view 1; view 2]: one forward pass for the pair. A policy
    with one list of ops per view (augment/views.py) draws view i from its own policy."""
    first, second = getattr(policy, "views", None) or (policy, policy)
    return torch.cat([first(x, gen), second(x, gen)])


class ViewPair(Objective):
    """SimCLR and VICReg: both views through one network; `criterion(z1, z2)` compares them."""

    def __init__(self, network: SSLNetwork, criterion: nn.Module):
        super().__init__()
        self.network = network
        self.criterion = criterion

    def loss(self, x, y, policy, gen, amp):
        views = two_views(x, policy, gen)
        with _autocast(x, amp):
            z = self.network(views)
        z1, z2 = z.float().chunk(2)
        return self.criterion(z1, z2), None


def byol_momentum(step: int, steps: int, base: float) -> float:
    """BYOL's EMA momentum after update `step` (1-based) of `steps`: base at the first update,
    rising on a cosine to 1 at the end, tau = 1 - (1 - base) (cos(pi k / K) + 1) / 2, k = step - 1."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * (step - 1) / steps) + 1.0) / 2.0


class BYOL(Objective):
    """The online network + predictor regresses an EMA copy of the network (the target)."""

    def __init__(self, network: SSLNetwork, predictor_hidden: int, momentum_base: float):
        super().__init__()
        self.network = network
        out = network.projector[-1].out_features
        self.predictor = mlp_head(out, predictor_hidden, out)
        # Not trained by the optimizer (no gradient) but part of the state: checkpoints hold it.
        self.target = copy.deepcopy(network).requires_grad_(False)
        self.criterion = BYOLLoss()
        self.momentum_base = momentum_base

    def loss(self, x, y, policy, gen, amp):
        views = two_views(x, policy, gen)
        with _autocast(x, amp):
            p = self.predictor(self.network(views))
            with torch.no_grad():
                t = self.target(views)
        p1, p2 = p.float().chunk(2)
        t1, t2 = t.float().chunk(2)
        return self.criterion(p1, p2, t1, t2), None

    @torch.no_grad()
    def after_step(self, step: int, steps: int) -> None:
        tau = byol_momentum(step, steps, self.momentum_base)
        for target, online in zip(self.target.parameters(), self.network.parameters()):
            target.lerp_(online, 1.0 - tau)  # target = tau * target + (1 - tau) * online


def supervised_objective(run: dict, model: nn.Module) -> Objective:
    return Supervised(model, run["train"]["label_smoothing"])


def simclr_objective(run: dict, model: nn.Module) -> Objective:
    return ViewPair(build_ssl_network(model, run["ssl"]), NTXentLoss(run["ssl"]["simclr"]["temperature"]))


def vicreg_objective(run: dict, model: nn.Module) -> Objective:
    v = run["ssl"]["vicreg"]
    return ViewPair(build_ssl_network(model, run["ssl"]), VICRegLoss(v["invariance"], v["variance"], v["covariance"]))


def byol_objective(run: dict, model: nn.Module) -> Objective:
    b = run["ssl"]["byol"]
    return BYOL(build_ssl_network(model, run["ssl"]), b["predictor_hidden"], b["momentum_base"])


def build_objective(run: dict, model: nn.Module) -> Objective:
    """The objective of a run (its resolved config) around `model`, a freshly built classifier:
    the one its method names in the method registry (dataworth.methods)."""
    from dataworth.methods import method_of

    return method_of(run).build_objective(run, model)
