"""`dataworth plan`: a study's run table with each run's state and pack, read from its results."""

from __future__ import annotations

from pathlib import Path


def run_state(study, run: dict, run_dir) -> tuple[str, str | None]:
    """The run's state and, for a corrupt one, its first bad file with why.

    ok / diverged (evaluated: its summary's status), trained, pending, or corrupt: a file of one of
    its stages is truncated or overwritten (the next `snakemake` redoes that stage for its pack).
    """
    from dataworth.files import CorruptFile
    from dataworth.tracking.schemas import SUMMARY, read_parquet

    for stage in study.stages(run):
        for path, why in run_dir.missing(stage):
            if why != "missing":
                return "corrupt", f"{path}: {why}"
    if run_dir.summary.exists():
        try:
            return str(read_parquet(run_dir.summary, SUMMARY)["status"].iloc[0]), None
        except CorruptFile as exc:  # complete-looking, but unreadable
            return "corrupt", str(exc).split(";")[0]
    if run_dir.trained:
        return "trained", None
    return "pending", None


def print_plan(study, results_root: str | Path = "results", out: str | Path | None = None,
               timing: bool = True) -> None:
    import pandas as pd

    from dataworth.packs import Packs
    from dataworth.tracking.collect import run_table
    from dataworth.tracking.schemas import RUN_TABLE, write_parquet

    table = run_table(study)
    study_dir = study.study_dir(results_root)
    packs = Packs(study, study_dir)
    pack_of = packs.pack_of  # as recorded, or as the next `snakemake` would pack them
    found = [run_state(study, run, study_dir.run_dir(run["run_id"])) for run in study.runs]
    states = [state for state, _ in found]
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
    corrupt = [why for _, why in found if why]
    for why in corrupt[:10]:
        print(f"corrupt: {why}")
    if corrupt:
        print(f"{len(corrupt)} corrupt run(s){' (first 10 shown)' if len(corrupt) > 10 else ''}: the next "
              "`snakemake` makes their files again")
    if out:
        print(f"run table written to {out}")
    # --- issue 18 item 3: SLURM jobs and device-hours before launch (cost.py) ---
    from dataworth.cost import print_cost

    print_cost(study, packs, results_root, timing)
