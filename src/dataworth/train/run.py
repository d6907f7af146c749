"""Train one run: resolved config in, the run directory's files out.

Writes, each atomically, in this order: config.json, history.parquet, model.pt, and last
training.parquet (the training job's record). Nothing outside the run directory is touched.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dataworth.augment import build_policy
from dataworth.data import load_dataset, nested_subset
from dataworth.files import atomic_path
from dataworth.models import build_model
from dataworth.runs import RunDir
from dataworth.tracking.live import live_logging
from dataworth.tracking.provenance import code_version
from dataworth.tracking.schemas import HISTORY, TRAINING, write_parquet
from dataworth.train.checkpoint import Checkpointer, StopRequest
from dataworth.train.loop import train_model
from dataworth.train.objectives import build_objective


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


def train_run(
    run: dict,
    data_path: str | Path,
    out: RunDir,
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
    out.write_config(run)

    data = load_dataset(data_path, device)
    subset = nested_subset(data.y["train"].cpu().numpy(), run["n_train"], run["seed"])
    subset = torch.as_tensor(subset, device=device)
    x, y = data.x["train"][subset], data.y["train"][subset]

    seeds = seed_streams(run["seed"])
    torch.manual_seed(seeds["init"])
    model = build_model(run["model"]["name"], run["model"]["width"], data.sample_shape, data.num_classes)
    # Supervised: the classifier; self-supervised: its encoder + projector (and BYOL's target).
    objective = build_objective(run, model).to(device)
    if not objective.uses_labels:
        y = None  # pretraining uses the n samples, not their labels
    policy = build_policy(run["augmentation"]["ops"])

    checkpointer = Checkpointer(
        out.checkpoint, run["run_id"], run["train"]["checkpoint_every_seconds"], stop or StopRequest().install()
    )
    startup = time.perf_counter() - process_start
    with live_logging(run, on_log) as log_row:  # curves on an MLflow server while training, if one is set
        result = train_model(
            objective, x, y, policy, run["train"],
            batch_gen=_generator(seeds["batches"], device),
            augment_gen=_generator(seeds["augment"], device),
            checkpointer=checkpointer,
            on_log=log_row,
        )

    history = pd.DataFrame(result.history)
    history.insert(0, "run_id", run["run_id"])
    write_parquet(history, HISTORY, out.history)
    with atomic_path(out.model) as tmp:
        torch.save(objective.network.state_dict(), tmp)
    record = {
        "run_id": run["run_id"],
        "status": result.status,
        "steps_completed": result.steps_completed,
        "final_loss": result.final_loss,
        "wall_seconds": time.perf_counter() - process_start,
        "compute_seconds": result.compute_seconds,
        "startup_seconds": startup,
        "device": str(device),
        "num_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "data_sha256": data.meta["sha256"],
        "host": socket.gethostname(),
        "resumed_from_step": result.resumed_from_step,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **code_version(),
    }
    write_parquet(pd.DataFrame([record]), TRAINING, out.training)
    checkpointer.remove()
    return record
