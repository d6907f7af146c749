"""Several test sets per study (`eval.test_sets`, issue 16 item 4).

`eval.test_sets` maps a name to a reference into the data root, e.g.

    eval:
      test_sets:
        cifar10: cifar10:test
        cifar10c_fog3: cifar10c:fog@3
        cifar10c_s3: cifar10c:all@3     # the mean over all 19 corruptions at severity 3

Each set is read from the prepared cache (the same parts `dataworth data prepare` makes), and
the `test_sets` stage evaluates every run's trained head on it: one row per (run, set) in the
run's test_sets.parquet, which collect pivots into `<set>_accuracy` / `<set>_loss` columns of
metrics.parquet. `cifar10c:all@<severity>` is one set whose loss and accuracy are the unweighted
mean over the 19 corruptions (each corruption holds the same 10,000 images, so it is also the
mean over every image). The sets are eval settings: not part of run ids; changing them
re-evaluates, never retrains.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dataworth.data.sources import CIFAR10C_CORRUPTIONS, Ref, parse_ref

NAME = re.compile(r"^[a-z0-9_]+$")
RESERVED = ("train", "test", "ood")
_ALL_CORRUPTIONS = re.compile(r"^cifar10c:all@(?P<severity>[^@]+)$")


def check_name(name: str) -> str | None:
    """Why `name` cannot name a test set (None if it can)."""
    from dataworth.tracking.schemas import METRICS

    if not NAME.match(name):
        return f"{name!r} is not allowed; allowed: lower-case letters, digits and _"
    if name in RESERVED:
        return f"{name!r} is taken by the fixed columns {name}_accuracy/{name}_loss; allowed: any other [a-z0-9_] name"
    taken = [c for c in (f"{name}_accuracy", f"{name}_loss") if c in METRICS.names]
    if taken:
        return f"{name!r} would make the column {taken[0]}, which metrics.parquet already has; choose another name"
    return None


def expand(reference: str) -> list[Ref]:
    """The parts a test-set reference evaluates: one, or the 19 CIFAR-10-C corruptions for
    `cifar10c:all@<severity>`. ValueError saying what is allowed."""
    whole = _ALL_CORRUPTIONS.match(reference)
    if whole:
        if whole["severity"] not in ("1", "2", "3", "4", "5"):
            raise ValueError(f"{reference!r}: the severity is one of 1, 2, 3, 4, 5, not {whole['severity']}")
        return [parse_ref(f"cifar10c:{c}@{whole['severity']}") for c in CIFAR10C_CORRUPTIONS]
    return [parse_ref(reference)]


def check_test_sets(test_sets: dict[str, str]) -> list[str]:
    """Problems of the names and references alone (no files read), one line each."""
    problems = []
    for name, reference in test_sets.items():
        problem = check_name(name)
        if problem:
            problems.append(f"eval.test_sets: name {problem}")
            continue
        try:
            expand(reference)
        except ValueError as exc:
            hint = "" if reference.startswith("cifar10c:all@") else (
                " (or cifar10c:all@<1..5>: the mean over all 19 corruptions)")
            problems.append(f"eval.test_sets.{name}: {exc}{hint}")
    return problems


def check_against_dataset(spec, test_sets: dict[str, str]) -> list[str]:
    """Each set found under the data root (read into the cache once), with the training data's
    image shape and classes; one line per problem. `spec` is a dataset that stores pixels."""
    from dataworth.data.cache import read_ref
    from dataworth.data.readers import DataFileError

    meta = spec.prepared()
    root = spec.data_root()
    shape, classes = tuple(meta["sample_shape"]), meta["num_classes"]
    problems = []
    for name, reference in test_sets.items():
        for ref in expand(reference):
            try:
                x, y = read_ref(root, ref)
            except DataFileError as exc:
                problems.append(f"eval.test_sets.{name}: {exc}")
                break
            if len(y) == 0:
                problems.append(f"eval.test_sets.{name}: {ref} holds no images")
            elif tuple(x.shape[1:]) != shape:
                problems.append(f"eval.test_sets.{name}: {ref} has images of shape {tuple(x.shape[1:])} but the "
                                f"training data ({spec.name}) has {shape}; they must match")
            elif int(y.max()) >= classes or int(y.min()) < 0:
                problems.append(f"eval.test_sets.{name}: {ref} has labels {int(y.min())}..{int(y.max())} but the "
                                f"training data ({spec.name}) has {classes} classes (0..{classes - 1}); a test set "
                                "needs the training data's classes")
            else:
                continue
            break
    return problems


def _data_root(run_dir) -> Path:
    """The data root of the run's study: DATAWORTH_DATA, else the validated study's dataset.root
    (results/<study>/study.json; the root is execution-only, so run configs do not hold it)."""
    from dataworth.data.sources import data_root
    from dataworth.runs import StudyDir

    study_json = StudyDir(run_dir.path.parent.parent).study_json
    study = json.loads(study_json.read_text()) if study_json.exists() else {"dataset": {}}
    return data_root(study["dataset"].get("root"))  # neither: an error naming both


def test_sets_run(run_dir, data_path: str | Path, eval_cfg: dict | None = None, threads: int = 1) -> dict:
    """Evaluate the run's trained head on every set of `eval.test_sets`; write test_sets.parquet."""
    import torch

    from dataworth.data import load_dataset
    from dataworth.data.cache import read_ref
    from dataworth.evaluate.classification import evaluate_split
    from dataworth.files import load_torch
    from dataworth.models import build_run_model
    from dataworth.tracking.schemas import TEST_SETS, TRAINING, read_parquet, write_parquet
    from dataworth.train.run import resolve_device

    start = time.perf_counter()
    torch.set_num_threads(threads)
    run = run_dir.read_config()
    cfg = eval_cfg or run["eval"]
    status = read_parquet(run_dir.training, TRAINING)["status"].iloc[0]
    model = None
    if status == "ok":
        device = resolve_device(run["train"]["device"])
        data = load_dataset(data_path, device)
        model = build_run_model(run["model"], data.sample_shape, data.num_classes)
        model.load_state_dict(load_torch(run_dir.model, map_location=device))
        model = data.for_evaluation(model.to(device))  # uint8 batches, normalised like training
        root = _data_root(run_dir)
    rows = []
    for name, reference in cfg["test_sets"].items():
        parts = expand(reference)
        row = {"run_id": run["run_id"], "set": name, "reference": reference, "parts": len(parts),
               "images": None, "loss": np.nan, "accuracy": np.nan}
        if model is not None:  # a diverged run: null metrics, like its summary
            losses, accuracies, images = [], [], 0
            for ref in parts:
                x, y = read_ref(root, ref)
                loss, accuracy = evaluate_split(model, torch.from_numpy(np.ascontiguousarray(x)).to(device),
                                                torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device),
                                                cfg["batch_size"])
                losses.append(loss)
                accuracies.append(accuracy)
                images += len(y)
            row.update(images=images, loss=float(np.mean(losses)), accuracy=float(np.mean(accuracies)))
        rows.append(row)
    table = pd.DataFrame(rows, columns=[c for c in TEST_SETS.names if c != "test_sets_seconds"])
    table["test_sets_seconds"] = time.perf_counter() - start
    write_parquet(table, TEST_SETS, run_dir.output("test_sets"))
    # The job's log line (evaluate.commands.describe): every set's accuracy on one line.
    shown = ", ".join(f"{r['set']} {r['accuracy']:.4f}" for r in rows)
    return {"run_id": run["run_id"], "set": shown, "test_sets_seconds": table["test_sets_seconds"].iloc[0]}


def pivot(long: pd.DataFrame, order=None) -> pd.DataFrame:
    """test_sets rows (run_id, set, loss, accuracy) -> one row per run_id with `<set>_accuracy` and
    `<set>_loss` columns, the sets in `order` (default: their first appearance)."""
    sets = list(order or dict.fromkeys(long["set"]))
    wide = pd.DataFrame({"run_id": pd.unique(long["run_id"])})
    for name in sets:
        part = long[long["set"] == name].set_index("run_id")
        wide[f"{name}_accuracy"] = wide["run_id"].map(part["accuracy"]).astype("float64")
        wide[f"{name}_loss"] = wide["run_id"].map(part["loss"]).astype("float64")
    return wide
