"""One policy per view of a self-supervised method (issue 17): `{views: [[...], [...]]}`.

BYOL's views are asymmetric (view 1: blur p 1.0, solarize p 0.0; view 2: blur p 0.1, solarize
p 0.2); studies/ssl-cifar10.yaml writes them so, and each view is drawn from its own policy."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml
from scipy.stats import binomtest

from conftest import REPO, TINY_STUDY
from dataworth.augment.image_ops import GaussianBlur, Solarize
from dataworth.augment.views import ViewPolicies, training_policy
from dataworth.data import prepare_dataset
from dataworth.runs import RunDir
from dataworth.study import StudyError, ViewPoliciesSpec, load_study, policy_identity
from dataworth.tracking.schemas import HISTORY, read_parquet
from dataworth.train import train_run
from dataworth.train.objectives import two_views

SHIFT, NOISE = [{"op": "shift", "max_shift": 3}], [{"op": "noise", "std": 1.0}]


def ssl_study(**policies) -> dict:
    """TINY_STUDY with a supervised and a BYOL method; policies named here train BYOL only."""
    study = copy.deepcopy(TINY_STUDY)
    study["augmentations"].update(policies)
    study["grid"].update(method=["supervised", "byol"], n_train=[32])
    study["grid"]["augmentation"] += list(policies)
    study["grid"]["exclude"] = [{"method": "supervised", "augmentation": name} for name in policies]
    return study


def problems_of(study: dict) -> list[str]:
    with pytest.raises(StudyError) as err:
        load_study(study)
    return err.value.problems


def test_run_ids_change_only_for_policies_with_views():
    # Literal ids computed on main before per-view policies existed: they must never change.
    before = {"supervised none": "26406aae39b0", "supervised shift": "c91fc3ec663e",
              "byol none": "7bc07c596021", "byol shift": "6e396ae53a68"}
    runs = load_study(ssl_study(asym={"views": [SHIFT, NOISE]})).runs
    ids = {f"{r['method']} {r['augmentation']['name']}": r["run_id"] for r in runs}
    assert {k: v for k, v in ids.items() if "asym" not in k} == before
    asym = next(r for r in runs if r["augmentation"]["name"] == "asym")
    assert asym["method"] == "byol" and set(asym["augmentation"]) == {"name", "views"}
    assert [[op["op"] for op in ops] for ops in asym["augmentation"]["views"]] == [["shift"], ["noise"]]
    # MLflow shows each view's ops under its own param.
    from dataworth.tracking.mlflow_fields import run_params

    params = run_params(asym)
    assert "augmentation_ops" not in params
    assert [json.loads(params[f"augmentation_view{i}_ops"])[0]["op"] for i in (1, 2)] == ["shift", "noise"]
    # The views are ordered: swapping them is another run.
    swapped = load_study(ssl_study(asym={"views": [NOISE, SHIFT]})).runs
    assert next(r for r in swapped if r["augmentation"]["name"] == "asym")["run_id"] != asym["run_id"]


def test_views_are_validated_with_one_line_each():
    assert problems_of(ssl_study(v={"views": [SHIFT]})) == [
        "augmentations.v.views: 1 view(s); allowed: exactly 2 lists of ops, one per view (got [[{'op': 'shift', "
        "'max_shift': 3}]])"]
    assert problems_of(ssl_study(v={"views": [SHIFT, NOISE], "rounds": 2})) == [
        "augmentations.v.rounds: unknown key; allowed keys here: views"]
    assert problems_of(ssl_study(v={"views": [SHIFT, [{"op": "shift"}]]})) == [
        "augmentations.v.views[1][0].max_shift: required key is missing"]
    # An image op in a view of a signal study: the path names the view and the op.
    assert problems_of(ssl_study(v={"views": [SHIFT, [{"op": "hflip"}]]}))[0].startswith(
        "augmentations.v.views[1][0].op: 'hflip' does not apply to signal1d data (synthetic); allowed: ")
    # A supervised run sees one view per image: it cannot train with a policy per view.
    study = ssl_study(v={"views": [SHIFT, NOISE]})
    study["grid"]["exclude"] = []
    assert problems_of(study) == [
        "augmentations.v.views: one policy per view is for self-supervised methods (two views per image), but "
        "supervised runs train with it; allowed: a list of ops for them, or grid.exclude {method: supervised, "
        "augmentation: v}"]


def test_byol_views_of_the_shipped_study_blur_and_solarize_at_each_views_own_p(monkeypatch):
    written = yaml.safe_load((REPO / "studies" / "ssl-cifar10.yaml").read_text())["augmentations"]["byol_views"]
    spec = ViewPoliciesSpec.model_validate(written)
    # The study's settings, as BYOL's paper gives them.
    p = [{op.op: op.p for op in ops if op.op in ("gaussian_blur", "solarize")} for ops in spec.views]
    assert p == [{"gaussian_blur": 1.0, "solarize": 0.0}, {"gaussian_blur": 0.1, "solarize": 0.2}]
    policy = training_policy(policy_identity("byol_views", spec))
    assert isinstance(policy, ViewPolicies) and len(policy.views) == 2

    # Count the images each view's blur and solarize transform: with draw_p_first, an op's
    # transform sees exactly the images its p chose.
    counts = []
    for cls in (GaussianBlur, Solarize):
        original = cls.transform

        def counting(self, x, gen, original=original, name=cls.__name__):
            counts.append((name, x.shape[0]))
            return original(self, x, gen)

        monkeypatch.setattr(cls, "transform", counting)
    n = 3000
    x = torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(1)).float()
    views = two_views(x, policy, torch.Generator().manual_seed(0))
    assert views.shape == (2 * n, 3, 8, 8)
    # View 1 draws blur (all n) and no solarize call; view 2 draws blur, then solarize.
    assert [name for name, _ in counts] == ["GaussianBlur", "GaussianBlur", "Solarize"]
    (_, blur1), (_, blur2), (_, solarized2) = counts
    assert blur1 == n
    for count, prob in ((blur2, 0.1), (solarized2, 0.2)):
        assert binomtest(count, n, prob).pvalue > 1e-3, (count, n, prob)


def test_a_byol_run_trains_with_a_policy_per_view(tmp_path, monkeypatch):
    import dataworth.augment.ops as ops

    data = tmp_path / "data.pt"
    prepare_dataset(TINY_STUDY["dataset"], data)
    study = ssl_study(asym={"views": [SHIFT, NOISE]})
    study["train"].update(steps=3, warmup_steps=0)
    run = next(r for r in load_study(study).runs if r["augmentation"]["name"] == "asym")
    seen = []
    for name, cls in (("shift", ops.Shift), ("noise", ops.Noise)):
        def spy(self, x, gen, original=cls.transform, name=name):
            seen.append(name)
            return original(self, x, gen)

        monkeypatch.setattr(cls, "transform", spy)
    out = RunDir(tmp_path / "run")
    train_run(run, data, out)
    assert read_parquet(out.history, HISTORY)["loss"].notna().all()
    # Each step draws view 1 (shift) then view 2 (noise): never one policy for both views.
    assert seen == ["shift", "noise"] * run["train"]["steps"]
