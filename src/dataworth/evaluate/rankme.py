"""RankMe (Garrido et al. 2023): the effective rank of a set of embeddings, a label-free score.

    RankMe(Z) = exp(-sum_k p_k log p_k),   p_k = sigma_k / ||sigma||_1 + eps,   eps = 1e-7,

with sigma the singular values of the N x K embedding matrix Z. It lies between about 1
(collapse to a line) and min(N, K) (singular values all equal).
"""

from __future__ import annotations

import torch

EPS = 1e-7


@torch.no_grad()
def rankme(embeddings: torch.Tensor, eps: float = EPS) -> float:
    # float64: the small singular values decide the score, float32 rounds them off.
    sigma = torch.linalg.svdvals(embeddings.double())
    # All-zero embeddings have no direction: p_k = eps for every k, and RankMe about 1.
    p = sigma / sigma.sum().clamp_min(torch.finfo(torch.float64).tiny) + eps
    return torch.exp(-(p * p.log()).sum()).item()
