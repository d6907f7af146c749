"""`dataworth plan`: a study's run table with each run's state and pack, read from its results."""

from __future__ import annotations

from pathlib import Path


def run_state(study, run: dict, run_dir) -> str:
    """ok / diverged (evaluated: its summary's status), trained, or pending."""
    from dataworth.tracking.schemas import SUMMARY, read_parquet

    if run_dir.summary.exists():
        return str(read_parquet(run_dir.summary, SUMMARY)["status"].iloc[0])
    if run_dir.trained:
        return "trained"
    return "pending"


def print_plan(study, results_root: str | Path = "results", out: str | Path | None = None) -> None:
    import pandas as pd

    from dataworth.packs import Packs
    from dataworth.tracking.collect import run_table
    from dataworth.tracking.schemas import RUN_TABLE, write_parquet

    table = run_table(study)
    study_dir = study.study_dir(results_root)
    pack_of = Packs(study, study_dir).pack_of  # as recorded, or as the next `snakemake` would pack them
    states = [run_state(study, run, study_dir.run_dir(run["run_id"])) for run in study.runs]
    if out:
        write_parquet(table, RUN_TABLE, out)
    shown = table[["run_id", "method", "n_train", "augmentation", "model", "width", "seed"]].assign(
        state=states, pack=[pack_of[run_id] for run_id in table["run_id"]])
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(shown.to_string(index=False))
    counts = pd.Series(states).value_counts().to_dict()
    print(f"\nstudy {study.name!r}: {len(table)} runs in {study_dir.runs} "
          f"({', '.join(f'{v} {k}' for k, v in counts.items())}), "
          f"{len(set(pack_of.values()))} packs of up to {study.spec.resources.runs_per_job} runs per job")
    if out:
        print(f"run table written to {out}")
