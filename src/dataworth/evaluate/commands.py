"""`dataworth probe`, `dataworth knn`, `dataworth rankme`: evaluate a trained run's representation.

Called by the probe, knn and rankme rules; each writes one Parquet file in the run directory.
Registered on the CLI by `register`; torch is imported inside the commands.
"""

from __future__ import annotations

import math
from pathlib import Path


def _study_and_run(args):
    from dataworth.runs import RunDir
    from dataworth.study import load_study_or_exit, run_or_exit

    study = load_study_or_exit(args.study)
    run_or_exit(study, args.run_id)  # a clear error if the run is not in the study
    return study.spec.eval.model_dump(), RunDir(Path(args.run_dir))


def _number(value) -> str:
    return "null" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def cmd_probe(args) -> None:
    from dataworth.evaluate.representation import probe_run

    eval_cfg, run_dir = _study_and_run(args)
    row = probe_run(run_dir, args.data, eval_cfg, threads=args.threads)
    print(f"run {row['run_id']}: linear probe on {row['probe_labeled']} labeled samples: "
          f"test accuracy {_number(row['probe_test_accuracy'])}, ood accuracy {_number(row['probe_ood_accuracy'])}, "
          f"final probe loss {_number(row['probe_train_loss'])} ({row['probe_seconds']:.1f}s)")


def cmd_knn(args) -> None:
    from dataworth.evaluate.representation import knn_run

    eval_cfg, run_dir = _study_and_run(args)
    row = knn_run(run_dir, args.data, eval_cfg, threads=args.threads)
    print(f"run {row['run_id']}: {row['knn_k']}-NN on {row['knn_labeled']} labeled samples: "
          f"test accuracy {_number(row['knn_test_accuracy'])}, ood accuracy {_number(row['knn_ood_accuracy'])} "
          f"({row['knn_seconds']:.1f}s)")


def cmd_rankme(args) -> None:
    from dataworth.evaluate.representation import rankme_run

    eval_cfg, run_dir = _study_and_run(args)
    row = rankme_run(run_dir, args.data, eval_cfg, threads=args.threads)
    print(f"run {row['run_id']}: RankMe on {row['rankme_samples']} samples: encoder {_number(row['rankme_encoder'])}, "
          f"projector {_number(row['rankme_projector'])} ({row['rankme_seconds']:.1f}s)")


def register(subparsers) -> None:
    for name, func, what in (
        ("probe", cmd_probe, "train a linear probe on one run's frozen features and write probe.parquet"),
        ("knn", cmd_knn, "k-NN accuracy of one run's frozen features; writes knn.parquet"),
        ("rankme", cmd_rankme, "RankMe of one run's features and projector outputs; writes rankme.parquet"),
    ):
        p = subparsers.add_parser(name, help=f"{what} (called by the {name} rule)")
        p.add_argument("--study", required=True, help="the study; its eval section is used")
        p.add_argument("--run-id", required=True)
        p.add_argument("--run-dir", required=True)
        p.add_argument("--data", required=True, help="prepared dataset file")
        p.add_argument("--threads", type=int, default=1)
        p.set_defaults(func=func)
