"""Evaluation of trained runs: accuracy and loss on the training subset, the test and the OOD sets
(`evaluate_run`); linear probe, k-NN and RankMe of the representation (`representation`)."""

from dataworth.evaluate.classification import evaluate_split
from dataworth.evaluate.run import evaluate_run

__all__ = ["evaluate_run", "evaluate_split"]
