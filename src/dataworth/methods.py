"""The method registry: what each training method is, declared once.

A run's `method` names one entry. Study validation, run ids, objectives, packing and evaluation
read what they need from here instead of comparing method names, so a new method is one entry
here and one objective function in train/objectives.py.

Nothing heavy is imported here (study validation reads it); the objective is named by import path.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str
    uses_labels: bool  # trains a classifier head on labels (supervised); else self-supervised pretraining
    objective: str  # "module:function" building its training objective: (run, model) -> Objective
    settings: str | None = None  # its section under the study's `ssl:` (in its runs' ids), if any
    trains_together: bool = False  # a pack of its runs can train as one grouped model (train/packed.py)

    @property
    def self_supervised(self) -> bool:
        return not self.uses_labels

    def build_objective(self, run: dict, model):
        module, name = self.objective.split(":")
        return getattr(importlib.import_module(module), name)(run, model)


_OBJECTIVES = "dataworth.train.objectives"
METHODS: dict[str, Method] = {
    "supervised": Method("supervised", uses_labels=True, objective=f"{_OBJECTIVES}:supervised_objective",
                         trains_together=True),
    "simclr": Method("simclr", uses_labels=False, objective=f"{_OBJECTIVES}:simclr_objective", settings="simclr"),
    "vicreg": Method("vicreg", uses_labels=False, objective=f"{_OBJECTIVES}:vicreg_objective", settings="vicreg"),
    "byol": Method("byol", uses_labels=False, objective=f"{_OBJECTIVES}:byol_objective", settings="byol"),
}



def method_of(run: dict) -> Method:
    """The method of a run (its resolved config)."""
    return METHODS[run["method"]]
