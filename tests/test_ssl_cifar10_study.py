"""The shipped studies/ssl-cifar10.yaml (issue 17 item 5) plans on the CIFAR-10 fixtures.

The fixtures are written at CIFAR-10's real size (5 batches of 10,000 random images): the study
asks for n_train up to 50,000 and RankMe on 25,600 images, which validation checks against the
pool. It plans only: training it is a GPU cluster's work.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from conftest import BIN, REPO
from dataworth.study import load_study, policy_views
from fixtures_data import write_cifar10, write_cifar10c
from test_workflow import jobs_run

pytestmark = pytest.mark.integration

STUDY = REPO / "studies" / "ssl-cifar10.yaml"


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, per_batch=10_000, n_test=10)
    write_cifar10c(root, corruptions=("gaussian_noise",), n=4)
    return root


def test_ssl_cifar10_study_validates_plans_and_dry_runs(cifar_root, project, monkeypatch):
    monkeypatch.setenv("DATAWORTH_DATA", str(cifar_root))
    monkeypatch.delenv("DATAWORTH_CACHE", raising=False)
    written = yaml.safe_load(STUDY.read_text())
    assert "root" not in written["dataset"]  # users point DATAWORTH_DATA at their files
    study = load_study(STUDY)
    spec = study.spec
    assert spec.dataset.name == "cifar10" and [(m.name, m.width) for m in spec.grid.model] == [("resnet18", 64)]
    # Each method trains with no augmentation and with its own views: 4 methods x 2 policies x 4 sizes.
    pairs = {(r["method"], r["augmentation"]["name"]) for r in study.runs}
    assert pairs == {("supervised", "none"), ("supervised", "crop_flip"), ("simclr", "none"),
                     ("simclr", "simclr_views"), ("vicreg", "none"), ("vicreg", "vicreg_views"),
                     ("byol", "none"), ("byol", "byol_views")}
    assert len(study.runs) == 32
    # BYOL's views are asymmetric: one list of ops per view (tests/test_augment_views.py checks their p).
    views = [ops for name in ("simclr_views", "vicreg_views", "byol_views")
             for ops in policy_views(spec.augmentations[name])]
    assert len(views) == 4 and all([op.op for op in ops][:4] == ["resized_crop", "hflip", "color_jitter", "grayscale"]
                                   for ops in views)

    plan = subprocess.run([str(BIN / "dataworth"), "plan", str(STUDY), "--results", str(project.root / "results"),
                           "--no-timing"],  # timing a ResNet-18 on a CPU takes long: test_cost.py covers it
                          capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr
    assert "study 'ssl-cifar10': 32 runs" in plan.stdout

    project.write_study(written)
    dry = project.snakemake("-n", env={"DATAWORTH_DATA": str(cifar_root)})
    jobs = jobs_run(dry.stdout + dry.stderr)
    assert jobs["train"] == 32 and jobs["evaluate"] == 32, jobs  # runs_per_job: 1
