"""The mechanism stages (issue 19 part B) on hand-computable cases, then once on a tiny trained run.

Local complexity: hyperplanes at known distances; a linear network. Flatness: a linear least-squares
model whose loss along any direction is known; Hessian traces of MSE and of softmax regression
against NumPy formulas. Gradient statistics: a constant gradient, pure noise, a Gaussian with a known
noise scale. Invariance: cases whose agreement and cosine are known.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dataworth.evaluate.flatness import distance_to_threshold, filter_normalized_direction, hutchinson_trace
from dataworth.evaluate.gradient_stats import noise_scale, norm_distribution, pair_cosines, per_sample_gradients, snr
from dataworth.evaluate.invariance import agreement, mean_cosine, transformations
from dataworth.evaluate.boundaries import crossings, orthonormal_directions


class Net(nn.Module):
    """A network with `features`, as the stages expect."""

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.encoder, self.head = encoder, head or nn.Identity()

    def features(self, x):
        return self.encoder(x)

    def forward(self, x):
        return self.head(self.encoder(x))


def hidden_layer(normals, offsets) -> Net:
    """x -> ReLU(W x + b): neuron j's boundary is the hyperplane n_j . x = o_j (unit normals)."""
    normals = torch.tensor(normals, dtype=torch.float32)
    layer = nn.Linear(normals.shape[1], len(normals))
    with torch.no_grad():
        layer.weight.copy_(normals)
        layer.bias.copy_(-torch.tensor(offsets, dtype=torch.float32))
    return Net(nn.Sequential(layer, nn.ReLU()))


# --- local complexity ---------------------------------------------------------------------------

def test_orthonormal_directions_are_orthonormal():
    v = orthonormal_directions(5, 7, 3, torch.Generator().manual_seed(0), "cpu")
    gram = v @ v.transpose(1, 2)
    assert torch.allclose(gram, torch.eye(3).expand(5, 3, 3), atol=1e-5)
    with pytest.raises(ValueError, match="allowed: 1..7"):
        orthonormal_directions(1, 7, 8, torch.Generator(), "cpu")


def test_hyperplanes_at_known_distances_in_the_plane():
    # P = D = 2: the neighbourhood is a square of half-diagonal r (any rotation), which holds the
    # disc of radius r/sqrt(2) and lies in the disc of radius r. Around the origin, r = 1:
    # distances 0, 0.3, 0.6 (< 0.707) are always crossed; 1.2 and 3 never.
    s = 1 / math.sqrt(2)
    net = hidden_layer([[1, 0], [0, 1], [s, s], [-s, s], [1, 0]], [0.0, 0.3, -0.6, 1.2, 3.0])
    x = torch.zeros(40, 2)
    names, units, counts = crossings(net.features, net, x, 1.0, 2, torch.Generator().manual_seed(1))
    assert names == ["encoder.1"] and units == [5]
    assert (counts[:, 0] == 3).all()


def test_hyperplanes_through_and_beyond_the_neighbourhood_in_high_dimension():
    # P < D: a hyperplane through the point is crossed by any segment x +- r v not inside it; one
    # farther than r from the point by none. 6 through, 4 beyond: 6 crossings at every point.
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(30, 16, generator=gen)
    normals = torch.nn.functional.normalize(torch.randn(10, 16, generator=gen), dim=1)
    counts_expected = 6
    layer = nn.Linear(16, 10)
    net = Net(nn.Sequential(layer, nn.ReLU()))
    for i in range(len(x)):
        offsets = normals @ x[i]
        offsets[6:] += torch.tensor([0.26, -0.3, 1.0, -5.0])  # beyond r = 0.25
        with torch.no_grad():
            layer.weight.copy_(normals)
            layer.bias.copy_(-offsets)
        _, _, counts = crossings(net.features, net, x[i:i + 1], 0.25, 4, gen)
        assert counts[0, 0] == counts_expected


def test_a_linear_network_has_no_boundaries_and_layers_are_counted_separately():
    linear = Net(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
    names, units, counts = crossings(linear.features, linear, torch.randn(8, 4), 1.0, 2, torch.Generator())
    assert names == [] and counts.shape == (8, 0) and counts.sum() == 0
    # Two ReLU layers: the second's pre-activation is the first's output, here the identity on the
    # positive quadrant. Around (2, 2) with r = 0.1 nothing changes sign; around (0.05, 3) with
    # r = 1 the first coordinate does in both layers.
    first, second = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        for layer in (first, second):
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
    net = Net(nn.Sequential(first, nn.ReLU(), second, nn.ReLU()))
    _, _, far = crossings(net.features, net, torch.tensor([[2.0, 2.0]]), 0.1, 2, torch.Generator().manual_seed(0))
    _, units, near = crossings(net.features, net, torch.tensor([[0.05, 3.0]]), 1.0, 2, torch.Generator().manual_seed(0))
    assert units == [2, 2] and far.tolist() == [[0, 0]] and near.tolist() == [[1, 1]]


# --- flatness -----------------------------------------------------------------------------------

def isotropic_least_squares(c: float, d: int = 4):
    """Inputs +-sqrt(c d) e_i (so X^T X / N = c I, and they sum to 0), targets from w*: a linear model at w* has
    loss 0 and loss(w* + t u) = c |u|^2 t^2 exactly, for any u."""
    eye = torch.eye(d) * math.sqrt(c * d)
    x = torch.cat([eye, -eye])
    model = nn.Linear(d, 1, bias=False)
    y = model(x).detach()
    return model, x, y


def test_distance_to_threshold_of_a_quadratic_bowl():
    c, step, threshold = 0.5, 0.1, 1.0
    model, x, y = isotropic_least_squares(c)
    params = list(model.parameters())
    trained = params[0].detach().clone()

    def loss():
        with torch.no_grad():
            return float(((model(x) - y) ** 2).mean())

    direction = filter_normalized_direction(params, torch.Generator().manual_seed(0))
    w_norm = float(trained.norm())
    assert float(direction[0].norm()) == pytest.approx(w_norm, rel=1e-5)  # one filter: scaled to its norm
    # loss(k) = c |d|^2 (k step)^2 >= threshold first at k = ceil(sqrt(threshold / c) / (|w| step)).
    k = math.ceil(math.sqrt(threshold / c) / (w_norm * step))
    distance, reached = distance_to_threshold(loss, params, direction, step, threshold, max_steps=1000)
    assert reached and distance == pytest.approx(w_norm * step * k, rel=1e-5)
    assert torch.equal(params[0].detach(), trained)  # restored
    capped, reached = distance_to_threshold(loss, params, direction, step, threshold, max_steps=1)
    assert k > 1 and not reached and capped == pytest.approx(w_norm * step, rel=1e-5)


def test_filter_normalisation_scales_each_filter_and_skips_biases():
    conv = nn.Conv1d(2, 3, 3)
    d_weight, d_bias = filter_normalized_direction(list(conv.parameters()), torch.Generator().manual_seed(0))
    assert torch.allclose(d_weight.flatten(1).norm(dim=1), conv.weight.detach().flatten(1).norm(dim=1), rtol=1e-5)
    assert (d_bias == 0).all()


def test_hutchinson_trace_of_mean_squared_error_of_a_linear_model():
    # loss = mean_i (w.x_i + b - y_i)^2: H = 2/N [X 1]^T [X 1], trace = 2/N (sum |x_i|^2 + N).
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(50, 6))
    x, y = torch.tensor(x_np, dtype=torch.float64), torch.tensor(rng.normal(size=(50, 1)))
    model = nn.Linear(6, 1).double()
    params = list(model.parameters())
    expected = 2 / 50 * ((x_np ** 2).sum() + 50)

    def chunks():  # two chunks, each its share of the mean
        for part in (slice(0, 20), slice(20, 50)):
            yield ((model(x[part]) - y[part]) ** 2).sum() / 50

    trace, stderr = hutchinson_trace(chunks, params, 100, torch.Generator().manual_seed(0))
    assert trace == pytest.approx(expected, abs=4 * stderr) and stderr < 0.1 * expected


def test_hutchinson_trace_is_exact_for_a_diagonal_hessian():
    # Isotropic inputs summing to 0: H = 2/N [X 1]^T [X 1] = 2 diag(c, ..., c, 1), and v^T H v =
    # tr H for every +-1 vector v: each probe gives 2 (c d + 1) exactly.
    _, x, y = isotropic_least_squares(0.5, d=4)
    model = nn.Linear(4, 1)  # with a bias
    trace, stderr = hutchinson_trace(lambda: [((model(x) - y) ** 2).mean()], list(model.parameters()), 3,
                                     torch.Generator().manual_seed(0))
    assert trace == pytest.approx(2 * (0.5 * 4 + 1), rel=1e-5) and stderr == pytest.approx(0, abs=1e-5)


def test_hutchinson_trace_of_softmax_regression():
    # Cross-entropy of logits W x (no bias): H = 1/N sum_i (diag p_i - p_i p_i^T) (x) x_i x_i^T,
    # trace = 1/N sum_i sum_k p_ik (1 - p_ik) |x_i|^2.
    rng = np.random.default_rng(1)
    x_np, w_np = rng.normal(size=(40, 5)), rng.normal(size=(3, 5))
    y = torch.tensor(rng.integers(0, 3, size=40))
    model = nn.Linear(5, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(w_np))
    logits = x_np @ w_np.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = float(((p * (1 - p)).sum(1) * (x_np ** 2).sum(1)).mean())
    x = torch.tensor(x_np)

    def chunks():
        yield torch.nn.functional.cross_entropy(model(x), y)

    trace, stderr = hutchinson_trace(chunks, list(model.parameters()), 60, torch.Generator().manual_seed(1))
    assert trace == pytest.approx(expected, abs=4 * stderr) and stderr < 0.1 * expected


# --- gradient statistics ------------------------------------------------------------------------

def test_snr_of_a_constant_gradient_is_infinite_and_of_pure_noise_near_zero():
    constant = torch.tensor([1.0, -2.0, 0.5]).repeat(10, 1)
    assert snr(constant) == math.inf
    noise = torch.randn(400, 1000, generator=torch.Generator().manual_seed(0))
    assert snr(noise) == pytest.approx(1 / math.sqrt(400), rel=0.1)  # |mean| ~ sqrt(P/m), |std| ~ sqrt(P)


def test_snr_matches_numpy():
    g = np.random.default_rng(3).normal(loc=0.3, size=(12, 20))
    expected = np.linalg.norm(g.mean(0)) / np.linalg.norm(g.std(0, ddof=1))
    assert snr(torch.tensor(g)) == pytest.approx(expected, rel=1e-9)


def test_noise_scale_of_a_known_gaussian_gradient_distribution():
    # Per-sample gradients N(G, Sigma): a batch of B has mean gradient N(G, Sigma / B), and
    # B_simple = tr(Sigma) / |G|^2.
    rng = np.random.default_rng(4)
    dims, batch, m = 50, 16, 4000
    g_true = rng.normal(size=dims)
    variances = rng.uniform(0.5, 2.0, size=dims)
    grads = g_true + rng.normal(size=(m, dims)) * np.sqrt(variances / batch)
    expected = variances.sum() / (g_true ** 2).sum()
    assert noise_scale(torch.tensor(grads), batch, m * batch) == pytest.approx(expected, rel=0.05)


def test_pair_cosines_and_norm_quantiles_by_hand():
    v = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    mean, std, pairs = pair_cosines(v)
    cos = np.array([0.0, 1 / math.sqrt(2), 1 / math.sqrt(2)])
    assert pairs == 3 and mean == pytest.approx(cos.mean()) and std == pytest.approx(cos.std())
    norms = norm_distribution(torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]]))  # norms 5, 1, 10
    assert norms["gradient_norm_mean"] == pytest.approx(16 / 3) and norms["gradient_norm_q50"] == pytest.approx(5)
    assert norms["gradient_norm_q10"] == pytest.approx(np.quantile([1, 5, 10], 0.1))


def test_per_sample_gradients_equal_one_backward_per_sample():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(24, 3)).eval()
    x, y = torch.randn(5, 1, 8), torch.tensor([0, 1, 2, 1, 0])
    batched = per_sample_gradients(net, x, y)
    for i in range(5):
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1]), list(net.parameters()))
        assert torch.allclose(batched[i], torch.cat([g.reshape(-1) for g in grads]), atol=1e-6)


# --- invariance ---------------------------------------------------------------------------------

def test_agreement_and_cosine_by_hand():
    clean = torch.tensor([[2.0, 1.0], [0.0, 1.0]])  # predicts 0, 1
    views = torch.tensor([[[3.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 5.0]]])  # view 0: 0, 0; view 1: 1, 1
    assert agreement(clean, views) == pytest.approx(2 / 4)
    features = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    view_features = torch.tensor([[[2.0, 0.0], [-1.0, -1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    assert mean_cosine(features, view_features) == pytest.approx((1 - 1 + 0 + 1 / math.sqrt(2)) / 4)


def test_transformations_are_each_policy_then_each_op():
    policies = {"none": [], "shift": [{"op": "shift"}], "both": [{"op": "shift"}, {"op": "noise"}]}
    assert [(p, t) for p, t, _ in transformations(policies)] == [
        ("shift", "all"), ("both", "all"), ("both", "0:shift"), ("both", "1:noise")]


# --- the stages on a tiny trained run, and the report's section -----------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny study's shift run (n 64) trained once with local complexity logged every 10 steps,
    and once without; all four mechanism stages computed on the first."""
    from conftest import TINY_STUDY

    from dataworth.data import prepare_dataset
    from dataworth.runs import STAGES, RunDir, StudyDir
    from dataworth.study import load_study
    from dataworth.train import train_run

    root = tmp_path_factory.mktemp("mechanisms")
    spec = copy.deepcopy(TINY_STUDY)
    spec["augmentations"]["shift_noise"] = [{"op": "shift", "max_shift": 3}, {"op": "noise", "std": 0.1}]
    spec["train"]["log_local_complexity_every"] = 20
    spec["eval"].update(invariance={"enabled": True, "samples": 32, "views": 2},
                        gradient_stats={"enabled": True, "batches": 4, "image_samples": 6},
                        flatness={"enabled": True, "samples": 64, "directions": 2, "hessian_probes": 2},
                        local_complexity={"enabled": True, "radius": 0.5, "directions": 4, "points": 16})
    study = load_study(spec)
    data = root / "data.pt"
    prepare_dataset(spec["dataset"], data)
    study_dir = StudyDir(root / "tiny")
    study.write_json(study_dir.study_json)
    run = next(r for r in study.runs if r["augmentation"]["name"] == "shift" and r["n_train"] == 64)
    run_dir = study_dir.run_dir(run["run_id"])
    train_run(run, data, run_dir)
    plain = copy.deepcopy(run)
    plain["train"]["log_local_complexity_every"] = 0
    train_run(plain, data, RunDir(root / "plain"))
    rows = {name: STAGES[name].compute(run_dir, data) for name in ("invariance", "gradient_stats", "flatness",
                                                                     "local_complexity")}
    return study, run, run_dir, RunDir(root / "plain"), rows


def test_the_stages_apply_as_switched_on(trained):
    study, run, *_ = trained
    assert study.stages(run)[-4:] == ["invariance", "gradient_stats", "flatness", "local_complexity"]
    off = load_study_default_eval(study)
    assert "invariance" not in off.stages(off.runs[0])


def load_study_default_eval(study):
    from dataworth.study import load_study

    spec = study.spec.model_dump(mode="json")
    spec["eval"] = {"batch_size": 256}
    spec["train"]["log_local_complexity_every"] = 0
    return load_study(spec)


def test_local_complexity_history_leaves_training_unchanged(trained):
    from dataworth.tracking.schemas import HISTORY, read_parquet

    _, _, run_dir, plain_dir, _ = trained
    logged, plain = read_parquet(run_dir.history, HISTORY), read_parquet(plain_dir.history, HISTORY)
    columns = ["step", "loss", "accuracy", "lr"]
    pd.testing.assert_frame_equal(logged[columns], plain[columns])
    assert plain["local_complexity_test"].isna().all()
    measured = logged.dropna(subset=["local_complexity_test"])
    assert measured["step"].tolist() == [20, 40]
    assert (measured["local_complexity_test"] >= 0).all() and (measured["local_complexity_train"] >= 0).all()
    assert logged[logged["step"] % 20 != 0]["local_complexity_test"].isna().all()


def test_stage_files_and_the_metrics_row(trained):
    from dataworth.tracking.collect import run_metrics
    from dataworth.tracking.schemas import INVARIANCE_OPS, LOCAL_COMPLEXITY_LAYERS, read_parquet

    study, run, run_dir, _, rows = trained
    assert rows["local_complexity"]["local_complexity_points"] == 16
    layers = read_parquet(run_dir.file("local_complexity_layers.parquet"), LOCAL_COMPLEXITY_LAYERS)
    assert layers["module"].tolist()[:3] == ["encoder.2", "encoder.5", "encoder.8"]  # cnn1d's three ReLUs
    for split in ("test", "train"):
        assert layers[layers["split"] == split]["crossings"].sum() == pytest.approx(rows["local_complexity"][f"local_complexity_{split}"])
    ops = read_parquet(run_dir.file("invariance_ops.parquet"), INVARIANCE_OPS)
    assert list(zip(ops["policy"], ops["transformation"])) == [
        ("shift", "all"), ("shift_noise", "all"), ("shift_noise", "0:shift"), ("shift_noise", "1:noise")]
    assert ((ops["agreement"] >= 0) & (ops["agreement"] <= 1)).all() and (ops["cosine"].abs() <= 1 + 1e-6).all()
    # The run's own policy is its row; shift alone and as shift_noise's first op are the same op but
    # different draws: no equality to expect there.
    own = ops[(ops["policy"] == "shift") & (ops["transformation"] == "all")].iloc[0]
    assert rows["invariance"]["invariance_agreement"] == own["agreement"]
    g = rows["gradient_stats"]
    assert g["gradient_batches"] == 4 and g["gradient_cosine_batch_pairs"] == 6 and g["gradient_cosine_image_pairs"] == 15
    assert g["gradient_snr"] > 0 and g["gradient_norm_q10"] <= g["gradient_norm_q50"] <= g["gradient_norm_q90"]
    f = rows["flatness"]
    assert f["flatness_samples"] == 64 and f["flatness_distance"] > 0 and np.isfinite(f["hessian_trace"])
    # collect's join: the run's summary and the stage files make its metrics.parquet row.
    from dataworth.evaluate.run import evaluate_run

    evaluate_run(run_dir, run_dir.path.parent.parent.parent / "data.pt")
    metrics = run_metrics(run_dir.summary)
    for column in ("invariance_cosine", "gradient_snr", "flatness_distance", "hessian_trace", "local_complexity_test"):
        assert np.isfinite(metrics[column].iloc[0]), column


def test_report_section_ranks_mechanisms_against_exchange_ratios(tmp_path):
    from dataworth.analysis import mechanisms

    # Two policies at three sizes; the ratio rises with flatness everywhere (rho = 1), falls with
    # the Hessian trace (rho = -1); the invariance is constant (no correlation).
    base = {"dataset": "d", "model": "m", "width": 1, "method": "supervised", "status": "ok"}
    metrics, rates = [], []
    for k, (policy, n) in enumerate([(p, n) for p in ("a", "b") for n in (100, 200, 400)]):
        for seed in (0, 1):
            metrics.append({**base, "augmentation": policy, "n_train": n, "seed": seed, "flatness_distance": k + seed * 0.1,
                            "hessian_trace": 10.0 - k, "invariance_cosine": 0.5})
        rates.append({**base, "augmentation": policy, "n": float(n), "metric": "test_accuracy", "grid": "study",
                      "ratio": 1.0 + k, "status": "ok"})
    rates.append({**base, "augmentation": "a", "n": 150.0, "metric": "test_accuracy", "grid": "dense", "ratio": 99.0})
    # A ratio its fit does not determine: shown, left out of the correlations (it would break rho = 1).
    metrics.append({**base, "augmentation": "c", "n_train": 100, "seed": 0, "flatness_distance": 0.0,
                    "hessian_trace": 0.0, "invariance_cosine": 0.5})
    rates.append({**base, "augmentation": "c", "n": 100.0, "metric": "test_accuracy", "grid": "study",
                  "ratio": 50.0, "status": "augmented_undetermined"})
    metrics, rates = pd.DataFrame(metrics), pd.DataFrame(rates).fillna({"status": "ok"})
    table = mechanisms.points(metrics, rates, "none")
    assert len(table) == 7 and table["status"].tolist().count("ok") == 6
    ok = table[table["status"] == "ok"]
    assert ok["flatness_distance"].tolist() == pytest.approx([k + 0.05 for k in range(6)])
    corr = mechanisms.correlations(table).set_index("mechanism")
    assert corr.loc["flatness_distance", "spearman"] == pytest.approx(1.0)
    assert corr.loc["hessian_trace", "spearman"] == pytest.approx(-1.0)
    assert corr.loc["flatness_distance", "points"] == 6
    assert corr.loc["invariance_cosine", "points"] == 6 and np.isnan(corr.loc["invariance_cosine", "spearman"])
    files: list[str] = []
    section = mechanisms.write_section(metrics, rates, tmp_path, "none", lambda name, t: name, files)
    assert section[0].startswith("## Why augmentations") and files == [
        "mechanism_invariance_cosine.png", "mechanism_flatness_distance.png", "mechanism_hessian_trace.png"]
    assert all((tmp_path / name).stat().st_size > 0 for name in files)
    # No status-ok ratio (e.g. every augmented curve beyond the reference's asymptote): a note, no figures.
    files = []
    section = mechanisms.write_section(metrics, rates.assign(status="beyond_reference_asymptote"), tmp_path, "none",
                                       lambda name, t: name, files)
    assert files == [] and "nothing to put the mechanisms against" in section[-2]


def test_settings_are_checked_at_validate_time(tiny_study):
    from dataworth.study import StudyError, load_study

    bad = copy.deepcopy(tiny_study)
    bad["eval"]["local_complexity"] = {"enabled": True, "directions": 33}  # synthetic signals: 32 values
    with pytest.raises(StudyError, match=r"eval.local_complexity.directions: 33 .* allowed: 1..32"):
        load_study(bad)
    bad = copy.deepcopy(tiny_study)
    bad["train"]["log_local_complexity_every"] = 15  # log_every is 10
    with pytest.raises(StudyError, match="must be a multiple of log_every"):
        load_study(bad)
    bad = copy.deepcopy(tiny_study)
    bad["eval"]["flatness"] = {"enabled": True, "stepsize": 0.1}
    with pytest.raises(StudyError, match="stepsize"):
        load_study(bad)
    # Eval settings and the history interval stay out of run ids.
    on = copy.deepcopy(tiny_study)
    on["eval"]["invariance"] = {"enabled": True}
    on["train"]["log_local_complexity_every"] = 20
    assert [r["run_id"] for r in load_study(on).runs] == [r["run_id"] for r in load_study(tiny_study).runs]
