"""Self-supervised losses, each a small module comparing the embeddings of two views.

`z1[i]` and `z2[i]` are the embeddings of two augmented views of sample i (shape (N, d)).
Each loss is computed in float32, whatever precision the network ran in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """SimCLR's normalized temperature-scaled cross-entropy (Chen et al. 2020).

    For each of the 2N embeddings, a 2N-1-way classification of its partner view among all
    other embeddings of the batch by cosine similarity / temperature; the mean over all 2N.
    """

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        n = len(z1)
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        logits = z @ z.T / self.temperature
        self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_pairs, float("-inf"))  # a view is not its own partner
        partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, partner)


def invariance_term(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """VICReg's invariance: mean squared distance between the two views' embeddings."""
    return F.mse_loss(z1, z2)


def variance_term(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance: mean hinge max(0, 1 - std) over dimensions; zero when every std >= 1."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance: sum of squared off-diagonal covariances, divided by the dimension."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov - torch.diag(torch.diag(cov))
    return off_diagonal.square().sum() / d


class VICRegLoss(nn.Module):
    """VICReg (Bardes et al. 2022): invariance + variance + covariance, weighted.

    As in the paper, the variance term is averaged over the two branches and the covariance
    term summed over them.
    """

    def __init__(self, invariance: float, variance: float, covariance: float):
        super().__init__()
        self.weights = (invariance, variance, covariance)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        invariance, variance, covariance = self.weights
        return (
            invariance * invariance_term(z1, z2)
            + variance * (variance_term(z1) + variance_term(z2)) / 2
            + covariance * (covariance_term(z1) + covariance_term(z2))
        )


class BYOLLoss(nn.Module):
    """BYOL (Grill et al. 2020): 2 - 2 cos(prediction, target) per pair, symmetrised.

    The online network's prediction of each view regresses the target network's embedding of
    the other view; the target gets no gradient. The mean of the two directions, in [0, 4].
    """

    def forward(self, p1: torch.Tensor, p2: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
        return (self._regress(p1, t2) + self._regress(p2, t1)) / 2

    @staticmethod
    def _regress(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (2 - 2 * F.cosine_similarity(prediction, target.detach(), dim=1)).mean()
