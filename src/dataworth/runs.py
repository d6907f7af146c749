"""Where a run's files live. A run owns `results/<study>/runs/<run_id>/` and writes nothing elsewhere."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dataworth.files import write_text_atomic


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

    def write_config(self, run: dict) -> None:
        write_text_atomic(self.config, json.dumps(run, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict:
        return json.loads(self.config.read_text())


def run_dir(results_dir: str | Path, run_id: str) -> RunDir:
    return RunDir(Path(results_dir) / "runs" / run_id)
