"""Every shipped study validates, plans and is versioned by DVC (issue 18 items 2, 3, 5, 7).

The paper studies (studies/geiping2022/) train on Geiping et al.'s CINIC-10 pool of 193,523 images
and ask for up to 192,000 of them. Writing that pool as PNG fixtures takes minutes, so here they
run on the small CINIC-10 / CIFAR-10 / CIFAR-10-C fixtures of tests/fixtures_data.py with their
training sizes (and the grid.exclude rules naming them) mapped one to one onto sizes the fixture
pool holds and the held-out test set shrunk to fit: every other key is the shipped file's, and the
run count depends only on how many sizes there are. The real sizes are checked against the
paper's scripts below. ssl-cifar10.yaml validates, plans and dry-runs in test_ssl_cifar10_study.py.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml

from conftest import REPO
from dataworth.data.sources import CIFAR10C_CORRUPTIONS
from dataworth.plan import print_plan
from dataworth.study import load_study
from fixtures_data import write_cifar10, write_cifar10c, write_cinic10
from test_workflow import jobs_run

# The runs each shipped study makes (headers of the study files say how they add up).
RUNS = {
    "params.yaml": 40,
    "studies/digits.yaml": 40,
    "studies/ssl-mnist1d.yaml": 40,
    "studies/rankme-hparams.yaml": 28,
    "studies/mnist1d-benchmark.yaml": 12,
    "studies/geiping2022/fig0.yaml": 75,
    "studies/geiping2022/fig1.yaml": 178,
    "studies/geiping2022/fig2.yaml": 104,
    "studies/geiping2022/fig3a.yaml": 234,
    "studies/geiping2022/fig3b.yaml": 104,
    "studies/geiping2022/fig4.yaml": 52,
}
ELSEWHERE = {"studies/ssl-cifar10.yaml"}
# The training sizes of the paper's scripts (fig0 has 25, the others 13), and the pool they draw from.
SCRIPT_SIZES_13 = [1000, 2000, 3000, 6000, 12000, 24000, 48000, 96000, 128000, 144000, 168000, 180000, 192000]
SCRIPT_SIZES_25 = [1000, 2000, 3000, 6000, 12000, 18000, 24000, 36000, 48000, 64000, 72000, 84000, 96000, 112000,
                   128000, 144000, 152000, 160000, 168000, 174000, 176000, 180000, 184000, 188000, 192000]
PAPER_POOL = 193_523


def shipped_study_files() -> set[str]:
    files = {str(p.relative_to(REPO)) for p in (REPO / "studies").rglob("*.yaml") if p.name != "dvc.yaml"}
    return files | {"params.yaml"}


def test_every_shipped_study_has_a_run_count_here():
    assert shipped_study_files() == set(RUNS) | ELSEWHERE


def test_paper_studies_use_the_scripts_sizes_and_recipe():
    for name, expected in RUNS.items():
        if "geiping2022" not in name:
            continue
        raw = yaml.safe_load((REPO / name).read_text())
        assert raw["grid"]["n_train"] == (SCRIPT_SIZES_25 if name.endswith("fig0.yaml") else SCRIPT_SIZES_13)
        assert max(raw["grid"]["n_train"]) <= PAPER_POOL
        assert raw["dataset"] == {"name": "cinic10", "pool": "all", "exclude_cifar10": True, "deduplicate": True,
                                  "holdout": 10000, "ood": "cifar10:test", "normalize": "cifar10"}
        train = raw["train"]
        assert (train["steps"], train["batch_size"], train["optimizer"], train["lr"], train["momentum"],
                train["weight_decay"], train["warmup_steps"]) == (60000, 128, "sgd", 0.1, 0.9, 0.0005, 2000)
        assert f"makes {expected} runs" in (REPO / name).read_text()


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cinic10(root, per_class={"train": 3, "valid": 2, "test": 2})  # 40 images not from CIFAR-10
    write_cifar10(root)
    write_cifar10c(root, corruptions=CIFAR10C_CORRUPTIONS, n=2)
    return root


def fixture_sized(raw: dict) -> dict:
    """The study with its sizes mapped one to one onto sizes the fixture pool holds (35 images)."""
    sizes = {n: 10 + i for i, n in enumerate(sorted(raw["grid"]["n_train"]))}
    raw["grid"]["n_train"] = [sizes[n] for n in raw["grid"]["n_train"]]
    for rule in raw["grid"].get("exclude", []):
        if "n_train" in rule:
            values = rule["n_train"] if isinstance(rule["n_train"], list) else [rule["n_train"]]
            rule["n_train"] = [sizes[n] for n in values]
    raw["dataset"]["holdout"] = 5
    return raw


@pytest.mark.parametrize("name", sorted(RUNS))
def test_shipped_study_validates_and_plans(name, image_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DATAWORTH_DATA", str(image_root))
    raw = yaml.safe_load((REPO / name).read_text())
    if raw["dataset"]["name"] == "cinic10":
        raw = fixture_sized(raw)
    study = load_study(raw, name=name)
    assert len(study.runs) == RUNS[name]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_plan(study, tmp_path / "results", timing=False)
    text = out.getvalue()
    assert f"{RUNS[name]} runs in" in text and f"cost: {RUNS[name]} runs, " in text
    if "geiping2022" in name:  # one run per job: train, then evaluate, rankme and test_sets (CIFAR-10-C)
        assert f"{4 * RUNS[name]} SLURM jobs ({RUNS[name]} train + {3 * RUNS[name]} evaluation" in text


@pytest.mark.integration
def test_paper_study_dry_runs(image_root, project):
    """`snakemake -n` on fig4, the paper study with the most kinds of network; the others differ only
    in their grid, and a dry run of fig3a's 234 runs takes 100 s on a loaded 2-core machine."""
    raw = fixture_sized(yaml.safe_load((REPO / "studies/geiping2022/fig4.yaml").read_text()))
    project.write_study(raw)
    dry = project.snakemake("-n", env={"DATAWORTH_DATA": str(image_root)})
    jobs = jobs_run(dry.stdout + dry.stderr)
    assert jobs["train"] == 52 and jobs["evaluate"] == 52 and jobs["test_sets"] == 52, jobs


def test_studies_dvc_yaml_versions_every_other_shipped_study():
    stages = yaml.safe_load((REPO / "studies" / "dvc.yaml").read_text())
    listed = stages["vars"][0]["studies"]
    assert {entry["file"] for entry in listed.values()} == shipped_study_files() - {"params.yaml"}
    for key, entry in listed.items():  # each key names the study's results folder
        assert yaml.safe_load((REPO / entry["file"]).read_text())["study"] == key
    for stage in ("run", "report"):
        assert stages["stages"][stage]["foreach"] == "${studies}"
