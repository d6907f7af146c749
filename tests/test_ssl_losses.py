"""Self-supervised losses and BYOL's target update, each against a hand-computed case."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dataworth.models.ssl import SSLNetwork
from dataworth.train.objectives import BYOL, byol_momentum
from dataworth.train.ssl_losses import (
    BYOLLoss, NTXentLoss, VICRegLoss, covariance_term, invariance_term, variance_term,
)


def test_nt_xent_by_hand():
    # Views a1, a2 and b1, b2 (normalised: (1,1)/sqrt2, (1,-1)/sqrt2); temperature 0.5 doubles the
    # cosine similarities. Pairs: a1.b1 = a1.b2 = a2.b1 = 1/sqrt2, a2.b2 = -1/sqrt2, a1.a2 = b1.b2 = 0.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    r = math.sqrt(2)  # a similarity of 1/sqrt2 over temperature 0.5
    per_anchor = [
        math.log(1 + 2 * math.exp(r)) - r,  # a1: partner b1 (r) among a2 (0), b2 (r)
        math.log(1 + math.exp(r) + math.exp(-r)) + r,  # a2: partner b2 (-r) among a1 (0), b1 (r)
        math.log(1 + 2 * math.exp(r)) - r,  # b1: partner a1 (r) among a2 (r), b2 (0)
        math.log(1 + math.exp(r) + math.exp(-r)) + r,  # b2: partner a2 (-r) among a1 (r), b1 (0)
    ]
    loss = NTXentLoss(temperature=0.5)(z1, z2)
    assert loss.item() == pytest.approx(sum(per_anchor) / 4, rel=1e-6)


def test_nt_xent_is_low_when_partners_match_and_others_differ():
    z = torch.eye(8)
    assert NTXentLoss(0.1)(z, z).item() < 1e-3
    assert NTXentLoss(0.1)(z, z.roll(1, dims=0)).item() > 5


def test_vicreg_terms_and_total_by_hand():
    z1 = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    z2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # differences (0,-1), (0,1): mean square 0.5
    assert invariance_term(z1, z2).item() == pytest.approx(0.5)
    # each dimension has values 0 and 1: unbiased variance 0.5, hinge 1 - sqrt(0.5 + 1e-4)
    hinge = 1 - math.sqrt(0.5 + 1e-4)
    assert variance_term(z1).item() == pytest.approx(hinge, rel=1e-6)
    assert variance_term(z2).item() == pytest.approx(hinge, rel=1e-6)
    # covariance matrices [[.5, +-.5], [+-.5, .5]]: off-diagonal squares sum 0.5, over d = 2
    assert covariance_term(z1).item() == pytest.approx(0.25)
    assert covariance_term(z2).item() == pytest.approx(0.25)
    total = VICRegLoss(invariance=25, variance=25, covariance=1)(z1, z2)
    assert total.item() == pytest.approx(25 * 0.5 + 25 * hinge + 1 * 0.5, rel=1e-6)


def test_vicreg_variance_is_zero_when_spread_and_positive_when_collapsed():
    gen = torch.Generator().manual_seed(0)
    spread = 3 * torch.randn(1000, 16, generator=gen)
    assert variance_term(spread).item() == 0.0
    collapsed = torch.ones(1000, 16) + 1e-3 * torch.randn(1000, 16, generator=gen)
    assert variance_term(collapsed).item() > 0.98
    assert covariance_term(torch.randn(5000, 4, generator=gen)).item() < 1e-2


def test_byol_loss_by_hand():
    # p1 against t2: orthogonal, 2 - 2*0 = 2; p2 against t1: parallel, 2 - 2*1 = 0; mean 1.
    p1, t2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    p2, t1 = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]])
    assert BYOLLoss()(p1, p2, t1, t2).item() == pytest.approx(1.0)


def test_byol_target_gets_no_gradient():
    p = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    BYOLLoss()(p, p, t, t).backward()
    assert p.grad is not None and t.grad is None


def test_byol_momentum_schedule():
    assert byol_momentum(1, 10, 0.99) == pytest.approx(0.99)
    assert byol_momentum(6, 10, 0.99) == pytest.approx(0.995)  # halfway: cos = 0
    values = [byol_momentum(s, 10, 0.9) for s in range(1, 11)]
    assert values == sorted(values) and values[-1] < 1.0
    assert byol_momentum(11, 10, 0.9) == pytest.approx(1.0)


def test_byol_ema_update_by_hand():
    network = SSLNetwork(nn.Flatten(), 2, hidden=3, out=2)
    byol = BYOL(network, predictor_hidden=3, momentum_base=0.9)
    assert not any(p.requires_grad for p in byol.target.parameters())
    with torch.no_grad():
        for p in network.parameters():
            p.fill_(1.0)
        for p in byol.target.parameters():
            p.fill_(0.0)
    byol.after_step(1, 10)  # tau = 0.9: target = 0.9 * 0 + 0.1 * 1
    assert all(torch.allclose(p, torch.full_like(p, 0.1)) for p in byol.target.parameters())
    byol.after_step(6, 10)  # tau = 0.95: target = 0.95 * 0.1 + 0.05 * 1
    assert all(torch.allclose(p, torch.full_like(p, 0.95 * 0.1 + 0.05)) for p in byol.target.parameters())
    assert all(torch.equal(p, torch.ones_like(p)) for p in network.parameters())  # the online net is untouched
    assert any(k.startswith("target.") for k in byol.state_dict())  # so checkpoints hold the target
