"""Train runs: resolved config in, each run directory's files out; one run at a time, or a
pack's runs together as one grouped model.

Writes, each atomically, in this order: config.json, history.parquet, model.pt, and last
training.parquet (the training job's record). Nothing outside the run directory is touched.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from dataworth.augment import build_policy
from dataworth.augment.views import training_policy
from dataworth.data import load_dataset, nested_subset
from dataworth.files import atomic_path
from dataworth.models import build_run_model
from dataworth.methods import method_of
from dataworth.runs import RunDir
from dataworth.tracking.live import live_logging
from dataworth.tracking.provenance import code_version
from dataworth.tracking.schemas import HISTORY, TRAINING, write_parquet
from dataworth.train.checkpoint import Checkpointer, StopRequest
from dataworth.train.heldout import heldout_curves
from dataworth.train.loop import Member, train
from dataworth.train.objectives import build_objective
from dataworth.train.packed import train_packed
from dataworth.train.progress import Progress


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but CUDA is not available on {socket.gethostname()}")
    return device


def seed_streams(seed: int) -> dict[str, int]:
    """Independent seeds for each random stream of a run, all fixed by the run's seed."""
    init, batches, augment = np.random.SeedSequence(seed).generate_state(3)
    return {"init": int(init), "batches": int(batches), "augment": int(augment)}


def _generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


@dataclass
class Prepared:
    """A run ready to train: its model (initialised from the run's seed), data, policy, streams."""

    run: dict
    run_dir: RunDir
    data: object
    objective: object
    member: Member  # its training data and random streams, as the loop takes them
    process_start: float
    startup: float = 0.0


def prepare_run(run: dict, data_path: str | Path, run_dir: RunDir, device: torch.device, process_start: float) -> Prepared:
    run_dir.write_config(run)
    data = load_dataset(data_path, device)
    subset = nested_subset(data.y["train"].cpu().numpy(), run["n_train"], run["seed"])
    subset = torch.as_tensor(subset, device=device)
    x, y = data.x["train"][subset], data.y["train"][subset]

    seeds = seed_streams(run["seed"])
    torch.manual_seed(seeds["init"])
    model = build_run_model(run["model"], data.sample_shape, data.num_classes)
    # Supervised: the classifier; self-supervised: its encoder + projector (and BYOL's target).
    objective = build_objective(run, model).to(device)
    if not objective.uses_labels:
        y = None  # pretraining uses the n samples, not their labels
    # Pixel datasets: the policy sees float pixels, the network normalised input (issue 16).
    policy = training_policy(run["augmentation"], data.training_policy)  # one per view for `views` policies
    # --- issue 17 item 2: a policy with rounds trains on a fixed set of copies drawn once ---
    if run["augmentation"].get("rounds"):
        from dataworth.augment import MAX_REPETITION_BYTES
        from dataworth.train.repetitions import fixed_copies, repetition_seed

        rounds = run["augmentation"]["rounds"]
        x = fixed_copies(x, build_policy(run["augmentation"]["ops"]), rounds, run["augmentation"]["first_round_clean"],
                         _generator(repetition_seed(run["seed"]), device), data.stores_pixels, MAX_REPETITION_BYTES)
        y = None if y is None else y.repeat(rounds)
        policy = data.training_policy(build_policy([]))  # no fresh draws: only the conversion to network input
    # ---
    member = Member(x, y, policy, _generator(seeds["batches"], device), _generator(seeds["augment"], device))
    return Prepared(run, run_dir, data, objective, member, process_start)


def finish_run(prepared: Prepared, result, device: torch.device) -> dict:
    """Write the run's history, weights and (last) training record; returns the record."""
    run, run_dir = prepared.run, prepared.run_dir
    # Every HISTORY column, null where a row has no value (columns only some runs log, issue 19).
    history = pd.DataFrame(result.history, columns=[c for c in HISTORY.names if c != "run_id"])
    history.insert(0, "run_id", run["run_id"])
    write_parquet(history, HISTORY, run_dir.history)
    with atomic_path(run_dir.model) as tmp:
        torch.save(prepared.objective.network.state_dict(), tmp)
    record = {
        "run_id": run["run_id"],
        "status": result.status,
        "steps_completed": result.steps_completed,
        "final_loss": result.final_loss,
        "wall_seconds": time.perf_counter() - prepared.process_start,
        "compute_seconds": result.compute_seconds,
        "startup_seconds": prepared.startup,
        "device": str(device),
        "num_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "data_sha256": prepared.data.meta["sha256"],
        "host": socket.gethostname(),
        "resumed_from_step": result.resumed_from_step,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **code_version(),
        **wall_clock_times(prepared.process_start),  # issue 20 item 4: real start and end (MLflow's times)
    }
    write_parquet(pd.DataFrame([record]), TRAINING, run_dir.training)
    return record


def wall_clock_times(process_start: float) -> dict:
    """started_at (this process's start, from its perf_counter) and ended_at (now), as UTC times."""
    now_wall, now_perf = time.time(), time.perf_counter()
    # UTC, given naive: Parquet stores it as UTC (the schema's timezone), readers get UTC-aware times.
    as_time = lambda seconds: pd.Timestamp(round(seconds * 1000), unit="ms")  # noqa: E731
    return {"started_at": as_time(now_wall - (now_perf - process_start)), "ended_at": as_time(now_wall)}


def train_run(
    run: dict,
    data_path: str | Path,
    run_dir: RunDir,
    threads: int = 1,
    process_start: float | None = None,
    on_log: Callable[[dict], None] | None = None,
    stop: StopRequest | None = None,
) -> dict:
    """Train the run described by its resolved config `run`; returns the training record.

    Resumes from the run directory's checkpoint if there is one. On SIGUSR1/SIGTERM it writes
    a checkpoint and raises `Preempted` (the caller decides how the run is started again); a
    job training several runs passes its one installed `stop`.
    """
    process_start = time.perf_counter() if process_start is None else process_start
    torch.set_num_threads(threads)
    device = resolve_device(run["train"]["device"])
    prepared = prepare_run(run, data_path, run_dir, device, process_start)
    checkpointer = Checkpointer(
        run_dir.checkpoint, run["run_id"], run["train"]["checkpoint_every_seconds"], stop or StopRequest().install()
    )
    prepared.startup = time.perf_counter() - process_start
    # issue 19: local complexity in the history rows (train.log_local_complexity_every), before they are logged
    from dataworth.evaluate.boundaries import history_logger

    add_local_complexity = history_logger(run, prepared.objective.network, prepared.data, prepared.member.x)
    # issue 20: a progress line and file every history row (train/progress.py), held-out curves (heldout.py)
    progress = Progress([run], [run_dir])
    with progress.watching(), live_logging(run, on_log) as log_row:  # live: curves on an MLflow server, if set
        # In this order: local complexity joins the row before the live logger sends it.
        row_loggers = [f for f in (add_local_complexity, log_row) if f]

        def on_row(member: int, row: dict) -> None:
            for log in row_loggers:
                log(row)
            progress.on_log(member, row)

        result, = train(prepared.objective, [prepared.member], run["train"], checkpointer, on_log=on_row,
                        evaluate=heldout_curves(run, prepared.data))
        record = finish_run(prepared, result, device)
    checkpointer.remove()
    return record


def can_train_together(runs: list[dict], mode: str) -> bool:
    """Whether `runs` (one pack: same model and recipe) train concurrently as one grouped model.

    `mode` is resources.pack_training: `concurrent`, `sequential`, or `auto`, which trains
    together on CUDA only (on a CPU small models are compute-bound and packing measured no
    faster). Only methods whose objective packs (methods.Method.trains_together: supervised).
    """
    if len(runs) < 2 or mode == "sequential" or not all(method_of(run).trains_together for run in runs):
        return False
    return mode == "concurrent" or resolve_device(runs[0]["train"]["device"]).type == "cuda"


def train_runs_together(runs: list[dict], data_path: str | Path, run_dirs: list[RunDir], threads: int = 1,
                        process_start: float | None = None, stop: StopRequest | None = None) -> list[dict]:
    """Train a pack's runs concurrently as one grouped model (train/packed.py); returns their records.

    Each run still gets exactly its own data, batch order, augmentations and initial weights, and
    its own files. The pack checkpoints as one, in the first run's directory (resumed only by the
    same runs trained together again).
    """
    process_start = time.perf_counter() if process_start is None else process_start
    torch.set_num_threads(threads)
    device = resolve_device(runs[0]["train"]["device"])
    prepared = [prepare_run(run, data_path, run_dir, device, process_start) for run, run_dir in zip(runs, run_dirs, strict=True)]
    checkpointer = Checkpointer(
        run_dirs[0].pack_checkpoint, "pack:" + ",".join(run["run_id"] for run in runs),
        runs[0]["train"]["checkpoint_every_seconds"], stop or StopRequest().install(),
    )
    startup = time.perf_counter() - process_start
    for p in prepared:
        p.startup = startup
    progress = Progress(runs, run_dirs)  # issue 20: progress and held-out curves per run of the pack
    with progress.watching():
        results = train_packed([p.objective.network for p in prepared], [p.member for p in prepared],
                               runs[0]["train"], checkpointer, on_log=progress.on_log,
                               evaluate=heldout_curves(runs[0], prepared[0].data))
        records = [finish_run(p, result, device) for p, result in zip(prepared, results)]
    checkpointer.remove()
    return records
