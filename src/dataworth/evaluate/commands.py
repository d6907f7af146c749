"""`dataworth probe`, `dataworth knn`, `dataworth rankme`: evaluate a trained run's representation.

Called by the probe, knn and rankme rules, once per pack of runs; each writes one Parquet file in
each run directory.
Registered on the CLI by `register`; torch is imported inside the commands.
"""

from __future__ import annotations

import math
from pathlib import Path


def _for_each_run(args, task: str, evaluate, describe) -> None:
    """Evaluate each of the job's runs with `evaluate(run_dir, data, eval_cfg, threads)`; print `describe(row)`."""
    from dataworth.cli import _load, _runs, for_each_run_or_exit

    study = _load(args.study)
    eval_cfg = study.spec.eval.model_dump()

    def one(run: dict, out) -> None:
        print(describe(evaluate(out, args.data, eval_cfg, threads=args.threads)), flush=True)

    for_each_run_or_exit(_runs(study, args), args.runs, task, one)


def _number(value) -> str:
    return "null" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def cmd_probe(args) -> None:
    from dataworth.evaluate.representation import probe_run

    _for_each_run(args, "probe", probe_run, lambda row: (
        f"run {row['run_id']}: linear probe on {row['probe_labeled']} labeled samples: "
        f"test accuracy {_number(row['probe_test_accuracy'])}, ood accuracy {_number(row['probe_ood_accuracy'])}, "
        f"final probe loss {_number(row['probe_train_loss'])} ({row['probe_seconds']:.1f}s)"))


def cmd_knn(args) -> None:
    from dataworth.evaluate.representation import knn_run

    _for_each_run(args, "knn", knn_run, lambda row: (
        f"run {row['run_id']}: {row['knn_k']}-NN on {row['knn_labeled']} labeled samples: "
        f"test accuracy {_number(row['knn_test_accuracy'])}, ood accuracy {_number(row['knn_ood_accuracy'])} "
        f"({row['knn_seconds']:.1f}s)"))


def cmd_rankme(args) -> None:
    from dataworth.evaluate.representation import rankme_run

    _for_each_run(args, "rankme", rankme_run, lambda row: (
        f"run {row['run_id']}: RankMe on {row['rankme_samples']} samples: encoder {_number(row['rankme_encoder'])}, "
        f"projector {_number(row['rankme_projector'])} ({row['rankme_seconds']:.1f}s)"))


def register(subparsers) -> None:
    from dataworth.cli import add_run_arguments

    for name, func, what in (
        ("probe", cmd_probe, "train a linear probe on each run's frozen features and write its probe.parquet"),
        ("knn", cmd_knn, "k-NN accuracy of each run's frozen features; writes its knn.parquet"),
        ("rankme", cmd_rankme, "RankMe of each run's features and projector outputs; writes its rankme.parquet"),
    ):
        p = subparsers.add_parser(name, help=f"{what} (called by the {name} rule, once per pack)")
        add_run_arguments(p, "the study; its eval section is used")
        p.set_defaults(func=func)
