"""Where a study's results live, and the stages that make them.

- `STAGES`, the stage registry: every stage of the workflow declared once (train, then the
  evaluations), with the files it leaves in a run directory, their Parquet schema, the function
  that computes them, the eval settings it reads and the runs it applies to. The Snakemake rules
  of the evaluations, the `dataworth <stage>` commands, collect, mtimes, submit and the pack
  markers all read it: a new metric is one entry here and one function.
- `StudyDir`: every path of `results/<study>/`; `RunDir`: every path of one run's directory.
  A run owns `results/<study>/runs/<run_id>/` and writes nothing elsewhere.

Names: the *results root* is `results/`, a *study dir* `results/<study>/`, a *run dir*
`results/<study>/runs/<run_id>/`.

This module imports nothing heavy (no torch, pandas or pyarrow): the Snakefile and `dataworth
--help` read it. Schemas are named (tracking.schemas.stage_schema looks them up) and functions
are named by import path, loaded when used.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dataworth.files import file_problem, write_text_atomic
from dataworth.methods import method_of


def _every_run(run: dict, eval_cfg: dict) -> bool:
    """every run"""
    return True


def _probed(run: dict, eval_cfg: dict) -> bool:
    """self-supervised runs; supervised runs too with `eval.probe_supervised` (a baseline)"""
    return method_of(run).self_supervised or eval_cfg["probe_supervised"]


def _has_test_sets(run: dict, eval_cfg: dict) -> bool:
    """runs with a trained classifier head, when the study names `eval.test_sets`"""
    return method_of(run).uses_labels and bool(eval_cfg.get("test_sets"))


# --- issue 19 part B: the mechanism stages, each switched on by `eval.<stage>.enabled`.
def _switched_on(stage: str, needs_head: bool):
    def applies(run: dict, eval_cfg: dict) -> bool:
        return bool(eval_cfg.get(stage, {}).get("enabled")) and (method_of(run).uses_labels or not needs_head)

    applies.__doc__ = (f"runs with a trained classifier head, when eval.{stage}.enabled" if needs_head
                       else f"every run, when eval.{stage}.enabled")
    return applies
# ---


def _load(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Stage:
    """One stage of the workflow: a job per pack of runs, files in each run directory."""

    name: str  # the rule, the `dataworth` subcommand, the pack marker `<name>.done`, the run log `<name>.log`
    files: tuple[str, ...]  # what it leaves in each run directory; the last is written last
    schema_name: str  # its last file's Parquet schema, by name (tracking.schemas.STAGE_SCHEMAS)
    function: str  # "module:function" of one run; an evaluation's: (run_dir, data_path, eval_cfg, threads) -> row
    eval_settings: tuple[str, ...] = ()  # the `eval:` keys it reads: its Snakemake params, its marker text
    applies_to: Callable[[dict, dict], bool] = _every_run  # (run, eval settings) -> whether it runs
    help: str = ""
    # One row per (run, test set) rather than one per run: collect pivots its rows into
    # metrics.parquet's dynamic `<set>_accuracy` / `<set>_loss` columns (issue 16 item 4).
    per_test_set: bool = False

    @property
    def evaluation(self) -> bool:
        return self.name != "train"

    @property
    def file(self) -> str:
        """The file whose presence says the stage is done for a run (written last)."""
        return self.files[-1]

    def compute(self, *args, **kwargs):
        return _load(self.function)(*args, **kwargs)


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("train", ("history.parquet", "model.pt", "training.parquet"), "training",
              "dataworth.train.run:train_run",
              help="train runs, each into its own run directory"),
        Stage("evaluate", ("summary.parquet",), "summary", "dataworth.evaluate.run:evaluate_run",
              eval_settings=("batch_size",),
              help="evaluate each run's trained classifier on its training subset, the test and OOD sets; "
                   "writes its summary.parquet"),
        Stage("probe", ("probe.parquet",), "probe", "dataworth.evaluate.representation:probe_run",
              eval_settings=("batch_size", "labeled", "probe"), applies_to=_probed,
              help="train a linear probe on each run's frozen features; writes its probe.parquet"),
        Stage("knn", ("knn.parquet",), "knn", "dataworth.evaluate.representation:knn_run",
              eval_settings=("batch_size", "labeled", "knn"), applies_to=_probed,
              help="k-NN accuracy of each run's frozen features; writes its knn.parquet"),
        Stage("rankme", ("rankme.parquet",), "rankme", "dataworth.evaluate.representation:rankme_run",
              eval_settings=("batch_size", "rankme"),
              help="RankMe of each run's features and projector outputs; writes its rankme.parquet"),
        Stage("test_sets", ("test_sets.parquet",), "test_sets", "dataworth.evaluate.test_sets:test_sets_run",
              eval_settings=("batch_size", "test_sets"), applies_to=_has_test_sets, per_test_set=True,
              help="evaluate each run's trained classifier on every set of eval.test_sets; writes its "
                   "test_sets.parquet"),
        # --- issue 19 part B: why augmentations are worth data (evaluate/invariance.py, ...) ---
        Stage("invariance", ("invariance_ops.parquet", "invariance.parquet"), "invariance",
              "dataworth.evaluate.invariance:invariance_run", eval_settings=("batch_size", "invariance"),
              applies_to=_switched_on("invariance", needs_head=False),
              help="agreement of predictions and cosine similarity of features between test images and their "
                   "augmented views, for every policy of the study; writes invariance.parquet"),
        Stage("gradient_stats", ("gradient_stats.parquet",), "gradient_stats",
              "dataworth.evaluate.gradient_stats:gradient_stats_run", eval_settings=("gradient_stats",),
              applies_to=_switched_on("gradient_stats", needs_head=True),
              help="gradient SNR, noise scale, norms and pair cosine similarities on each run's augmented "
                   "training distribution; writes gradient_stats.parquet"),
        Stage("flatness", ("flatness.parquet",), "flatness", "dataworth.evaluate.flatness:flatness_run",
              eval_settings=("batch_size", "flatness"), applies_to=_switched_on("flatness", needs_head=True),
              help="empirical flatness along random filter-normalised directions and the Hutchinson Hessian "
                   "trace; writes flatness.parquet"),
        Stage("local_complexity", ("local_complexity_layers.parquet", "local_complexity.parquet"), "local_complexity",
              "dataworth.evaluate.local_complexity:local_complexity_run", eval_settings=("local_complexity",),
              applies_to=_switched_on("local_complexity", needs_head=False),
              help="neuron boundaries crossing a neighbourhood of test and training points, per layer and in "
                   "total; writes local_complexity.parquet"),
        # ---
    )
}
EVALUATIONS: dict[str, Stage] = {name: stage for name, stage in STAGES.items() if stage.evaluation}
# The evaluation whose file is a run's row of metrics.parquet; the others are joined to it.
SUMMARY_STAGE = "evaluate"


def stages_of(run: dict, eval_cfg: dict) -> list[Stage]:
    """The stages a run goes through under the study's eval settings, in workflow order."""
    return [stage for stage in STAGES.values() if stage.applies_to(run, eval_cfg)]


@dataclass(frozen=True)
class RunDir:
    path: Path

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def model(self) -> Path:
        return self.path / "model.pt"

    @property
    def history(self) -> Path:
        return self.path / "history.parquet"

    @property
    def training(self) -> Path:
        return self.path / "training.parquet"

    @property
    def summary(self) -> Path:
        """Written by evaluation: the run's row of metrics.parquet."""
        return self.path / "summary.parquet"

    @property
    def checkpoint(self) -> Path:
        """Exists only while a run is unfinished (deleted once its outputs are written)."""
        return self.path / "checkpoint.pt"

    @property
    def pack_checkpoint(self) -> Path:
        """The checkpoint of a pack trained together, kept in its first run's directory: a file of
        its own, so falling back to one-by-one training never touches this run's checkpoint."""
        return self.path / "pack-checkpoint.pt"

    def output(self, stage: str) -> Path:
        """The file that says `stage` is done for this run (its last): summary.parquet, probe.parquet, ..."""
        return self.path / STAGES[stage].file

    def log(self, stage: str) -> Path:
        return self.path / "logs" / f"{stage}.log"

    def outputs(self, stage: str) -> list[Path]:
        """What the workflow's `stage` leaves in this run (train: model, history, training record)."""
        return [self.path / name for name in STAGES[stage].files]

    def missing(self, stage: str) -> list[tuple[Path, str]]:
        """The outputs of `stage` this run lacks, each with why: missing, or corrupt (a truncated or
        overwritten file, found by a cheap check of its format's start and end markers)."""
        problems = []
        for path in self.outputs(stage):
            if not path.exists():
                problems.append((path, "missing"))
            elif problem := file_problem(path):
                problems.append((path, problem))
        return problems

    def done(self, stage: str) -> bool:
        """Whether this run has every output of `stage`, each complete (a deleted or corrupt one
        makes the stage run again)."""
        return not self.missing(stage)

    @property
    def trained(self) -> bool:
        return self.done("train")

    def write_config(self, run: dict) -> None:
        write_text_atomic(self.config, json.dumps(run, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict:
        return json.loads(self.config.read_text())


@dataclass(frozen=True)
class StudyDir:
    """`results/<study>/`: everything the workflow writes for one study."""

    path: Path

    @classmethod
    def of(cls, study_name: str, results_root: str | Path = "results") -> "StudyDir":
        return cls(Path(results_root) / study_name)

    @property
    def study_json(self) -> Path:
        """The validated study the jobs read (written when the workflow starts, if it changed)."""
        return self.path / "study.json"

    @property
    def packs_json(self) -> Path:
        """The pack registry (packs.py)."""
        return self.path / "packs.json"

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    def run_dir(self, run_id: str) -> RunDir:
        return RunDir(self.runs / run_id)

    def data(self, dataset_id: str) -> Path:
        """The prepared dataset every run of the study reads."""
        return self.path / "data" / f"{dataset_id}.pt"

    def pack_dir(self, pack_id: str) -> Path:
        return self.path / "packs" / pack_id

    def marker(self, pack_id: str, stage: str) -> Path:
        """The done-marker of a pack's `stage` job: the job's only Snakemake output."""
        return self.pack_dir(pack_id) / f"{stage}.done"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.parquet"

    @property
    def metrics_aside(self) -> Path:
        """The last complete metrics.parquet, kept while a workflow that may remake it runs."""
        return self.logs / "metrics.previous.parquet"

    @property
    def fits(self) -> Path:
        return self.path / "fits.parquet"

    @property
    def exchange_rates(self) -> Path:
        return self.path / "exchange_rates.parquet"

    @property
    def reference(self) -> Path:
        """Published values against ours (issue 18 item 4; empty without a reference block)."""
        return self.path / "reference.parquet"

    @property
    def report(self) -> Path:
        return self.path / "report"

    @property
    def mlflow_record(self) -> Path:
        """What `dataworth track` synced last (the track rule's output)."""
        return self.path / "mlflow-sync.json"
