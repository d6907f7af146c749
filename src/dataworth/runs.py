"""Where a run's files live. A run owns `results/<study>/runs/<run_id>/` and writes nothing elsewhere."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dataworth.files import write_text_atomic


# The file each evaluation stage of the workflow writes per run.
STAGE_FILES = {"evaluate": "summary", "probe": "probe", "knn": "knn", "rankme": "rankme"}


@dataclass(frozen=True)
class RunDir:
    path: Path

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
    def checkpoint(self) -> Path:
        """Exists only while a run is unfinished (deleted once its outputs are written)."""
        return self.path / "checkpoint.pt"

    @property
    def pack_checkpoint(self) -> Path:
        """The checkpoint of a pack trained together, kept in its first run's directory: a file of
        its own, so falling back to one-by-one training never touches this run's checkpoint."""
        return self.path / "pack-checkpoint.pt"

    @property
    def probe(self) -> Path:
        """Linear probe on frozen features (its own rule; schema PROBE)."""
        return self.path / "probe.parquet"

    @property
    def knn(self) -> Path:
        """k-NN accuracy on frozen features (its own rule; schema KNN)."""
        return self.path / "knn.parquet"

    @property
    def rankme(self) -> Path:
        """RankMe of features and projector outputs (its own rule; schema RANKME)."""
        return self.path / "rankme.parquet"

    @property
    def summary(self) -> Path:
        """Written last, by evaluation: its presence means the run is complete."""
        return self.path / "summary.parquet"

    def outputs(self, stage: str) -> list[Path]:
        """What the workflow's `stage` (train, evaluate, probe, knn, rankme) leaves in this run."""
        if stage == "train":
            return [self.model, self.history, self.training]
        return [getattr(self, STAGE_FILES[stage])]

    def done(self, stage: str) -> bool:
        """Whether this run has every output of `stage` (a deleted one makes the stage run again)."""
        return all(path.exists() for path in self.outputs(stage))

    @property
    def trained(self) -> bool:
        return self.done("train")

    def write_config(self, run: dict) -> None:
        write_text_atomic(self.config, json.dumps(run, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict:
        return json.loads(self.config.read_text())


def run_dir(results_dir: str | Path, run_id: str) -> RunDir:
    return RunDir(Path(results_dir) / "runs" / run_id)
