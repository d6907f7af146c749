"""`make gpu-check` (scripts/gpu-check): its reduced CPU form runs end to end, a failing part fails
the check and is named, and its numbers agree with independent hand computations."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO
from dataworth.gpucheck import NO_GPU, PARTS, Tolerance, parse_parts, shipped_policies
from dataworth.models.flops import flops_per_sample
from dataworth.tracking.schemas import GPU_CHECK, read_parquet


IMAGE_DATASETS = {"digits", "synthetic_images", "cifar10", "cifar100", "cinic10", "svhn", "mnist", "fashion_mnist", "emnist", "image_folder"}


def gpu_check(*args: str, out) -> subprocess.CompletedProcess:
    # --device cpu: the reduced form even where CI has a GPU (the full form takes minutes).
    return subprocess.run([sys.executable, str(REPO / "scripts" / "gpu-check"), "--device", "cpu", "--repo",
                           str(REPO), "--out", str(out), *args], capture_output=True, text=True, timeout=900)


def resnet18_flops(width: int, size: int = 32, classes: int = 10) -> int:
    """Forward + backward FLOPs of one 3 x size x size sample through the CIFAR ResNet-18, by hand:
    a convolution does 2 * cin * cout * k * k FLOPs per output pixel forward, as much again for the
    input gradient and for the weight gradient, except the stem, whose input needs no gradient;
    the linear head likewise (BatchNorm, ReLU and pooling are not counted)."""
    convs = [(3, width, 3, size)]  # (cin, cout, kernel, output size): the stem
    cin = width
    for stage, mult in enumerate((1, 2, 4, 8)):
        cout, size = width * mult, size // 2 if stage else size
        convs += [(cin, cout, 3, size), (cout, cout, 3, size)] + ([(cin, cout, 1, size)] if cin != cout else [])
        convs += [(cout, cout, 3, size), (cout, cout, 3, size)]
        cin = cout
    forward = [2 * ci * co * k * k * out * out for ci, co, k, out in convs]
    return 3 * sum(forward) - forward[0] + 3 * 2 * cin * classes


@pytest.mark.parametrize("width", [4, 64])
def test_flops_per_sample_is_the_hand_count(width):
    assert flops_per_sample("resnet18", width, (3, 32, 32)) == resnet18_flops(width)


def test_reference_flops_are_twice_the_multiply_adds():
    # The paper's network does ~0.56 G multiply-adds forward per CIFAR image: 3.3 GFLOP per training sample.
    assert flops_per_sample("resnet18", 64, (3, 32, 32)) == pytest.approx(3 * 2 * 0.556e9, rel=0.01)


def test_tolerance():
    assert Tolerance(0.02, 0.05).bound(-2.0) == pytest.approx(0.12)
    assert str(Tolerance(0, 0)) == "bitwise equal"


def test_parts_by_number_or_name_and_a_one_line_error():
    assert parse_parts("5,augment,1") == [1, 3, 5]
    assert parse_parts("all") == list(PARTS)
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown part 'gpu'; allowed: all, or .*3 \(augment\)"):
        parse_parts("1,gpu")


def test_every_policy_of_every_shipped_study_is_checked():
    checked = {(modality, str(ops)) for _, modality, ops in shipped_policies(REPO)}
    for path in [REPO / "params.yaml", *(REPO / "studies").glob("*.yaml")]:
        study = yaml.safe_load(path.read_text())
        if "dataset" not in study:
            continue  # not a study (studies/dvc.yaml)
        modality = "image" if study["dataset"]["name"] in IMAGE_DATASETS else "signal1d"
        for policy, written in study["augmentations"].items():
            views = written.get("views") or [written.get("ops")] if isinstance(written, dict) else [written]
            for ops in views:  # issue 17: a rounds mapping's ops; each view of a views policy
                assert (modality, str(ops or [])) in checked, f"{path.name}: {policy} is not checked"


@pytest.mark.integration
def test_reduced_cpu_form_end_to_end(tmp_path):
    out = tmp_path / "gpu-check.parquet"
    proc = gpu_check(out=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("gpu-check ") and NO_GPU in proc.stdout.splitlines()[0]
    assert proc.stdout.rstrip().endswith("(reduced CPU form, no GPU used)")

    table = read_parquet(out, GPU_CHECK)
    assert set(table["part"]) == set(PARTS) and table["passed"].all()
    assert (table["gpu"] == "none").all() and table["reduced"].all() and (table["device"] == "cpu").all()
    for part, name in PARTS.items():  # the printed table names every part and its result
        assert any(line.split()[1:3] == [str(part), name] and " pass " in line for line in proc.stdout.splitlines())

    reference = table[table["part"] == 1].iloc[0]
    assert reference["flops_per_sample"] == resnet18_flops(16)
    assert reference["tflops"] == pytest.approx(reference["flops_per_sample"] * reference["samples_per_second"] / 1e12)
    assert reference["samples_per_second"] == pytest.approx(8 * reference["steps_per_second"])
    assert reference["projected_run_seconds"] == pytest.approx(60_000 / reference["steps_per_second"])

    packing = table[table["part"] == 2]
    assert sorted(set(packing["variant"])) == ["one after another", "together (K=1)", "together (K=4)"]
    runs = packing["case"].str.extract(r"K=(\d+)")[0].astype(int)
    np.testing.assert_allclose(packing["runs_per_hour"], runs * 3600 / packing["seconds"])
    together = packing[packing["variant"].str.startswith("together")]
    assert (together["difference"] <= together["tolerance"]).all()

    augment = table[table["part"] == 3]
    from dataworth.bench import IMAGE_POLICY_CASES

    assert len(augment) == len(shipped_policies(REPO)) + len(IMAGE_POLICY_CASES)
    assert (augment["samples_per_second"] > 0).all()
    assert augment["case"].str.startswith("paper policy").sum() == len(IMAGE_POLICY_CASES)

    study = table[table["part"] == 4]
    assert list(study["variant"]) == ["train.device: cpu", "train.device: auto"]
    assert study["note"].iloc[1].startswith("same run ids") and study["difference"].iloc[1] == 0

    determinism = table[table["part"] == 5].iloc[0]
    assert determinism["difference"] == 0 and "bitwise identical" in determinism["note"]


@pytest.mark.integration
def test_failing_and_crashing_parts_fail_the_check_and_are_named(tmp_path):
    out = tmp_path / "gpu-check.parquet"
    # The failure is injected into augment, the costliest of the three here (every shipped policy
    # timed), so that the part left to pass is the cheaper determinism check.
    proc = gpu_check("--parts", "reference,augment,determinism", "--inject-crash", "reference",
                     "--inject-failure", "augment", out=out)
    assert proc.returncode == 1
    assert proc.stderr.rstrip().endswith("gpu-check FAILED: part 1 (reference), part 3 (augment)")
    table = read_parquet(out, GPU_CHECK).set_index("part")
    assert not table.loc[1, "passed"] and "killed by SIGSEGV" in table.loc[1, "note"]
    assert not table.loc[3, "passed"] and "InjectedFailure" in table.loc[3, "note"]
    assert table.loc[[5], "passed"].all()  # a part after the crash ran, in a fresh process, and passed


def test_cuda_asked_for_without_cuda_is_one_line_error(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU, even on a machine with one
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu-check"), "--device", "cuda", "--out",
                           str(tmp_path / "x.parquet")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "CUDA is not available" in proc.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_docs_page_states_every_tolerance():
    from dataworth import gpucheck

    page = (REPO / "docs" / "gpu-check.md").read_text()
    for tolerance in (*gpucheck.PACKED_LOSS.values(), gpucheck.STUDY_LOSS, gpucheck.STUDY_ACCURACY,
                      *gpucheck.RERUN.values()):
        assert f"`{tolerance}`" in page, f"docs/gpu-check.md does not state the tolerance {tolerance}"
