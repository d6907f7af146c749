"""The report shows, for image studies, one augment-preview grid per policy (issue 17 item 6)."""

from __future__ import annotations

import copy
import json

from PIL import Image

from conftest import TINY_STUDY
from dataworth.study import load_study
from dataworth.tracking.schemas import METRICS, write_parquet
from test_analysis_report import synthetic_metrics

DIGITS = {
    "study": "digits-previews",
    "dataset": {"name": "digits"},
    # The policy names of test_analysis_report's synthetic metrics: none, shift, strong.
    "augmentations": {"none": [], "shift": [{"op": "crop", "padding": 1}],
                      "strong": {"ops": [{"op": "hflip"}, {"op": "cutout", "size": 3}], "rounds": 2}},
    "grid": {"n_train": [100], "augmentation": ["none", "shift", "strong"], "model": [{"name": "cnn2d", "width": 4}],
             "seed": [0]},
    "train": {"steps": 10},
}


def build(tmp_path, study_json: dict | None):
    from dataworth.analysis.report import report_from_file

    tmp_path.mkdir(exist_ok=True)
    # Few runs: the fits and figures are tested elsewhere; here only the previews matter.
    write_parquet(synthetic_metrics(sizes=(125, 500, 2000, 4000), seeds=(0,)), METRICS, tmp_path / "metrics.parquet")
    if study_json is not None:
        (tmp_path / "study.json").write_text(json.dumps(study_json))
    return report_from_file(tmp_path / "metrics.parquet", n_bootstrap=0)


def test_an_image_study_report_has_one_linked_grid_per_policy(tmp_path):
    report = build(tmp_path, load_study(DIGITS).spec.model_dump(mode="json"))
    text = (report.folder / "report.md").read_text()
    assert "## Augmentations" in text
    # A grid: a 14 px label row, then one 74 px row per image (8); columns of 74 px: the image, 4
    # draws of the policy, and each op alone when the policy has more than one.
    for policy, columns in (("none", 5), ("shift", 5), ("strong", 7)):
        name = f"augment_{policy}.png"
        assert name in report.files and f"![augmentation policy {policy}]({name})" in text
        with Image.open(report.folder / name) as image:
            assert image.format == "PNG" and image.size == (74 * columns, 14 + 74 * 8)


def test_signal_studies_get_no_grids(tmp_path):
    from dataworth.analysis.report import _augmentation_previews

    files = []
    spec = load_study(copy.deepcopy(TINY_STUDY)).spec  # synthetic 1D signals
    assert _augmentation_previews(tmp_path, spec, synthetic_metrics(), "none", files) == []
    assert files == [] and not list(tmp_path.iterdir())
    # Without its study.json beside metrics.parquet, a report has no previews either.
    assert _augmentation_previews(tmp_path, None, synthetic_metrics(), "none", files) == []


def test_missing_dataset_files_give_a_note_not_a_failure(tmp_path):
    from dataworth.analysis.report import _augmentation_previews
    from dataworth.study import StudySpec

    spec = {**copy.deepcopy(DIGITS), "dataset": {"name": "cifar10", "root": str(tmp_path / "nowhere"), "ood": "cifar10:test"}}
    files = []
    text = "\n".join(_augmentation_previews(tmp_path, StudySpec.model_validate(spec), synthetic_metrics(), "none", files))
    assert "## Augmentations" in text and "Not drawn: the dataset files are not on this machine (" in text
    assert files == [] and not list(tmp_path.glob("augment_*"))
