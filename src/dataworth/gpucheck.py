"""`make gpu-check`: does the CUDA path work on this machine, and how fast is it?

One command, under ten minutes on a CUDA machine, five parts, one table (and
results/gpu-check/gpu-check.parquet, schema GPU_CHECK), exit status 1 naming every failed part:

1. reference: ResNet-18 width 64 on 3x32x32 inputs, batch 128, SGD, bf16 autocast, channels_last,
   eager and torch.compile: steps/s, achieved TFLOP/s against the FLOPs per training sample
   measured here (FlopCounterMode), peak memory, the projected time of one 60,000-step run;
2. packing: K = 1, 4, 16 runs (mnist1d cnn1d, ResNet-18 width 16 on 32x32) trained together
   against the same runs one after another: runs per hour, and every member's final loss equal
   to its separate run's within the stated tolerance;
3. augment: every policy of every shipped study, batched on the device: images/s at batch 128,
   and the same seed giving the same batch;
4. study: a tiny study end to end through `snakemake` on CUDA and the same study on the CPU:
   the same run ids, metrics within the stated tolerance, and the runs really on CUDA;
5. determinism: the same run twice gives the same metrics (CUDA: within the stated deviation).

Without CUDA the same parts run on the CPU at reduced sizes (about a minute or two on 2 cores,
so CI proves the script itself works) and every output says that no GPU was used. Training goes
through the stable entry points (`train_run`, `train_runs_together`) and real Snakemake, so the
check covers the code studies run, not a copy of it.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PARTS = {1: "reference", 2: "packing", 3: "augment", 4: "study", 5: "determinism"}
PROJECTED_STEPS = 60_000  # one run of the paper's recipe
GOAL_SECONDS = 120  # our goal for that run on an H100-class GPU
NO_GPU = "no GPU: reduced CPU form (CUDA is not available here; nothing below measures a GPU)"
# The paper's standard image augmentation (Geiping et al. 2022): random flip, 4-pixel crop.
FLIP_CROP = [{"op": "flip"}, {"op": "crop", "padding": 4}]
SIGNAL_POLICY = [{"op": "shift", "max_shift": 6}, {"op": "scale", "min": 0.8, "max": 1.2}]
# Sample shape each modality's policies are timed on: mnist1d signals, CIFAR-shaped images.
AUGMENT_SHAPES = {"signal1d": (1, 40), "image": (3, 32, 32)}


@dataclass(frozen=True)
class Sizes:
    """How big each part is: FULL on a GPU, REDUCED on a CPU (the same code, smaller numbers)."""

    reference_width: int
    reference_batch: int
    reference_warmup: int  # steps before timing starts (compile happens in the first)
    reference_steps: int  # timed steps
    compile: bool
    pack_ks: tuple[int, ...]
    pack_steps: int
    pack_batch: int
    pack_n_train: int
    pack_resnet_width: int
    mnist1d_pool: int
    image_size: int  # of the synthetic images of parts 2, 4 and 5
    augment_repeats: int
    study_steps: int
    determinism_steps: int


FULL = Sizes(reference_width=64, reference_batch=128, reference_warmup=30, reference_steps=300, compile=True,
             pack_ks=(1, 4, 16), pack_steps=200, pack_batch=128, pack_n_train=1000, pack_resnet_width=16,
             mnist1d_pool=4000, image_size=32, augment_repeats=50, study_steps=40, determinism_steps=100)
# On 2 CPU cores: the reference network at width 16 and a batch and step count a CPU gets through
# in seconds; no torch.compile (inductor's C++ compile of ResNet-18 takes minutes there).
REDUCED = Sizes(reference_width=16, reference_batch=8, reference_warmup=2, reference_steps=2, compile=False,
                pack_ks=(1, 4), pack_steps=6, pack_batch=16, pack_n_train=64, pack_resnet_width=4,
                mnist1d_pool=400, image_size=16, augment_repeats=3, study_steps=20, determinism_steps=8)


@dataclass(frozen=True)
class Tolerance:
    """|a - b| <= atol + rtol * |b|: how far a value may be from the one it is compared with."""

    atol: float
    rtol: float

    def bound(self, reference: float) -> float:
        return self.atol + self.rtol * abs(reference)

    def __str__(self) -> str:
        if self.atol == self.rtol == 0:
            return "bitwise equal"
        return f"|diff| <= {self.atol:g} + {self.rtol:g} * |reference|"


# bf16 autocast rounds every convolution and matmul to 8 bits of mantissa: a packed (grouped)
# convolution or a CPU float32 run takes other roundings, and a few hundred SGD steps amplify
# them. These bounds are for the short runs here: differences beyond them are bugs (a packed run
# reading another run's channels changes the loss by far more), not rounding.
# CPU float32: summation order only, yet a small ResNet amplifies it quickly (measured: 1.3e-3 on a
# loss of 2.33 after 6 steps of ResNet-18 width 4, batch 16, from a difference of 3e-7 at step 2).
PACKED_LOSS = {"cuda": Tolerance(0.02, 0.05), "cpu": Tolerance(2e-3, 2e-3)}
STUDY_LOSS = Tolerance(0.05, 0.1)  # CUDA bf16 vs. CPU float32
STUDY_ACCURACY = Tolerance(0.08, 0.0)  # ~20 of the 256 test samples: near-tied logits flip
# CUDA: cuDNN may choose non-deterministic backward kernels (atomic adds), so two runs can differ in
# the last bits, growing over training; CPU runs are bitwise equal.
RERUN = {"cuda": Tolerance(1e-3, 1e-3), "cpu": Tolerance(0.0, 0.0)}


class InjectedFailure(RuntimeError):
    """Raised by `--inject-failure`: proves that a failing part fails the check and is named."""


@dataclass
class Context:
    device: "object"  # torch.device
    sizes: Sizes
    work: Path  # a temporary folder for datasets and run directories
    repo: Path  # the checkout whose Snakefile, workflow and studies are checked
    cores: int
    threads: int  # torch intra-op threads of in-process training, as a workflow job has by default

    @property
    def reduced(self) -> bool:
        return self.device.type != "cuda"

    def prepared(self, config: dict) -> Path:
        """The prepared dataset file of `config`, built once per check."""
        from dataworth.data import prepare_dataset
        from dataworth.study import short_hash

        path = self.work / "data" / f"{config['name']}-{short_hash(config, 8)}.pt"
        if not path.exists():
            prepare_dataset(config, path)
        return path

    def images(self, size: int | None = None) -> dict:
        size = size or self.sizes.image_size
        return {"name": "synthetic_images", "train_pool": 2048 if not self.reduced else 256, "test_size": 256,
                "size": size}

    def mnist1d(self) -> dict:
        return {"name": "mnist1d", "train_pool": self.sizes.mnist1d_pool, "test_size": 200}


def _row(part: int, case: str, variant: str, device, passed: bool, note: str, **values) -> dict:
    row = dict.fromkeys(("seconds", "steps_per_second", "samples_per_second", "flops_per_sample", "tflops",
                         "peak_memory_mb", "projected_run_seconds", "runs_per_hour", "difference", "tolerance"))
    row.update(values)
    return {"part": part, "part_name": PARTS[part], "case": case, "variant": variant, "device": str(device),
            **row, "passed": bool(passed), "note": note}


def _ratio(difference: float, bound: float) -> float:
    """How much of its allowance a difference uses (> 1: out of tolerance)."""
    if bound > 0:
        return difference / bound
    return 0.0 if difference == 0 else math.inf


def _reset_peak_memory(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def study_runs(ctx: Context, dataset: dict, models: list[dict], policies: dict, n_train: list[int],
               seeds: list[int], batch: int, steps: int, log_every: int, compile: bool = False) -> list[dict]:
    """The resolved runs of a study built here, as the workflow would run them (same ids)."""
    from dataworth.study import load_study

    spec = {
        "study": "gpu-check", "dataset": dataset, "augmentations": policies,
        "grid": {"n_train": n_train, "augmentation": list(policies), "model": models, "seed": seeds},
        "train": {"steps": steps, "batch_size": batch, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                  "weight_decay": 5e-4, "warmup_steps": 0, "log_every": log_every, "device": str(ctx.device),
                  "checkpoint_every_seconds": 0, "compile": compile},
    }
    return load_study(spec, name="gpu-check").runs


def _train(ctx: Context, run: dict, data: Path, folder: str) -> tuple[dict, "object"]:
    """Train `run` with `train_run` into a fresh run directory; its record and RunDir."""
    from dataworth.runs import RunDir
    from dataworth.train.run import train_run

    out = RunDir(ctx.work / folder / run["run_id"])
    return train_run(run, data, out, threads=ctx.threads), out


# --- 1. the reference case --------------------------------------------------------------------


def check_reference(ctx: Context) -> list[dict]:
    from dataworth.bench import _peak_memory_mb
    from dataworth.models.flops import flops_per_sample
    from dataworth.tracking.schemas import HISTORY, read_parquet

    s = ctx.sizes
    shape = (3, 32, 32)
    flops = flops_per_sample("resnet18", s.reference_width, shape)
    dataset = {**ctx.images(32), "train_pool": 1024}  # CIFAR-shaped at any image size of the other parts
    data = ctx.prepared(dataset)
    case = (f"resnet18-{s.reference_width} 3x32x32 batch {s.reference_batch} sgd flip+crop "
            f"{'bf16 channels_last' if not ctx.reduced else 'float32'}")
    rows = []
    for compile in (False, True) if s.compile else (False,):
        variant = "torch.compile" if compile else "eager"
        steps = s.reference_warmup + s.reference_steps
        run = study_runs(ctx, dataset, [{"name": "resnet18", "width": s.reference_width}],
                         {"flip_crop": FLIP_CROP}, [1024], [0], s.reference_batch, steps, s.reference_warmup,
                         compile)[0]
        _reset_peak_memory(ctx.device)
        record, out = _train(ctx, run, data, f"reference-{variant}")
        history = read_parquet(out.history, HISTORY)
        # Timed from the first history row (after the warm-up steps, whose sync ends any compile)
        # to the last: the steady state of the loop, set-up and compile excluded.
        first, last = history.iloc[0], history.iloc[-1]
        sps = (last["step"] - first["step"]) / (last["elapsed_seconds"] - first["elapsed_seconds"])
        samples = sps * s.reference_batch
        projected = PROJECTED_STEPS / sps
        ok = record["status"] == "ok" and record["steps_completed"] == steps and math.isfinite(record["final_loss"])
        if ctx.reduced:
            goal = "the 2-minute goal is judged on a GPU only"
        else:
            goal = (f"goal {GOAL_SECONDS} s per run on an H100-class GPU: "
                    f"{'met' if projected <= GOAL_SECONDS else 'missed'}")
        note = (f"{record['status']}, final loss {record['final_loss']:.3f}; first {s.reference_warmup} steps "
                f"(incl. {'compile' if compile else 'cuDNN/allocator warm-up'}) {first['elapsed_seconds']:.1f} s; "
                f"{goal}")
        rows.append(_row(1, case, variant, ctx.device, ok, note,
                         seconds=last["elapsed_seconds"] - first["elapsed_seconds"], steps_per_second=sps,
                         samples_per_second=samples, flops_per_sample=flops, tflops=flops * samples / 1e12,
                         peak_memory_mb=_peak_memory_mb(ctx.device), projected_run_seconds=projected))
    return rows


# --- 2. packing ------------------------------------------------------------------------------------


def _packing_cases(ctx: Context) -> list[tuple[str, dict, dict, dict]]:
    s = ctx.sizes
    image = f"{s.image_size}x{s.image_size}"
    return [
        ("mnist1d cnn1d-32", ctx.mnist1d(), {"name": "cnn1d", "width": 32}, {"shift_scale": SIGNAL_POLICY}),
        (f"synthetic 3x{image} resnet18-{s.pack_resnet_width}", ctx.images(),
         {"name": "resnet18", "width": s.pack_resnet_width}, {"flip_crop": FLIP_CROP}),
    ]


def check_packing(ctx: Context) -> list[dict]:
    from dataworth.bench import _sync
    from dataworth.runs import RunDir
    from dataworth.train.run import train_runs_together

    s = ctx.sizes
    tolerance = PACKED_LOSS[ctx.device.type]
    rows = []
    for name, dataset, model, policies in _packing_cases(ctx):
        data = ctx.prepared(dataset)
        for k in s.pack_ks:
            # K runs that differ by seed: own subset, initialisation, batch order and augmentations.
            runs = study_runs(ctx, dataset, [model], policies, [s.pack_n_train], list(range(k)), s.pack_batch,
                              s.pack_steps, max(1, s.pack_steps // 4))
            case = f"{name}, K={k} runs of {s.pack_steps} steps, batch {s.pack_batch}"
            start = time.perf_counter()
            separate = [_train(ctx, run, data, f"packing/separate-{k}")[0] for run in runs]
            _sync(ctx.device)
            sequential = time.perf_counter() - start
            rows.append(_row(2, case, "one after another", ctx.device, all(r["status"] == "ok" for r in separate),
                             "each run trained alone by train_run", seconds=sequential,
                             runs_per_hour=k * 3600 / sequential))

            outs = [RunDir(ctx.work / f"packing/together-{k}" / run["run_id"]) for run in runs]
            start = time.perf_counter()
            together = train_runs_together(runs, data, outs, threads=ctx.threads)
            _sync(ctx.device)
            packed = time.perf_counter() - start
            # The member furthest from its separate run, relative to what it is allowed.
            compared = [(abs(t["final_loss"] - r["final_loss"]), tolerance.bound(r["final_loss"]), t, r)
                        for t, r in zip(together, separate)]
            difference, bound, worst_together, worst_separate = max(compared, key=lambda c: _ratio(c[0], c[1]))
            passed = all(r["status"] == "ok" for r in together) and all(d <= b for d, b, _, _ in compared)
            note = (f"final losses vs. separate runs: worst member {worst_separate['run_id']} "
                    f"{worst_together['final_loss']:.5f} vs. {worst_separate['final_loss']:.5f}; tolerance "
                    f"{tolerance}; {sequential / packed:.2f}x the "
                    "runs per hour of one after another")
            rows.append(_row(2, case, f"together (K={k})", ctx.device, passed, note, seconds=packed,
                             runs_per_hour=k * 3600 / packed, difference=difference, tolerance=bound))
    return rows


# --- 3. batched augmentation ------------------------------------------------------------------------


def shipped_policies(repo: Path) -> list[tuple[str, str, list[dict]]]:
    """(name, modality, ops) of every augmentation policy of the shipped studies (params.yaml and
    studies/*.yaml), each distinct policy once. Read from the YAML, so a study whose dataset is not
    on this machine still has its policies checked."""
    import json

    import yaml

    from dataworth.data.datasets import DATASET_SPECS

    seen, policies = {}, []
    for path in [repo / "params.yaml", *sorted((repo / "studies").glob("*.yaml"))]:
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict) or "dataset" not in raw:
            continue  # not a study (studies/dvc.yaml)
        modality = DATASET_SPECS[raw["dataset"]["name"]].modality
        for name, written in (raw.get("augmentations") or {}).items():
            # issue 17: a policy with rounds is a mapping {ops, ...}; one with views checks each view.
            if isinstance(written, dict) and "views" in written:
                each = [(f"{name} view {i}", ops) for i, ops in enumerate(written["views"], start=1)]
            else:
                each = [(name, written.get("ops") if isinstance(written, dict) else written)]
            for label, ops in each:
                key = (modality, json.dumps(ops or [], sort_keys=True))
                if key in seen:
                    continue
                seen[key] = label
                policies.append((f"{path.name}: {label}", modality, ops or []))
    return policies


def check_augment(ctx: Context) -> list[dict]:
    """Every shipped policy (on standardised-looking data) and every paper image policy of the bench
    (on 0..255 pixels, as pixel datasets feed them): images/s, and the batch checks."""
    import torch

    from dataworth.bench import IMAGE_POLICY_CASES, pixel_images

    batch, rows = 128, []
    for name, modality, ops in shipped_policies(ctx.repo):
        shape = AUGMENT_SHAPES[modality]
        x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0)).to(ctx.device)
        rows.append(_augment_row(ctx, f"{name} ({'+'.join(op['op'] for op in ops) or 'none'}) on "
                                      f"{'x'.join(map(str, shape))}, batch {batch}", ops, x))
    pixels = pixel_images(batch, "cpu").to(ctx.device)
    for name, ops in IMAGE_POLICY_CASES.items():
        rows.append(_augment_row(ctx, f"paper policy {name} ({'+'.join(op['op'] for op in ops)}) on 0..255 "
                                      f"pixels {'x'.join(map(str, pixels.shape[1:]))}, batch {batch}", ops, pixels))
    return rows


def _augment_row(ctx: Context, case: str, ops: list[dict], x) -> dict:
    import torch

    from dataworth.augment import build_policy
    from dataworth.bench import _sync

    repeats = ctx.sizes.augment_repeats
    policy = build_policy(ops)
    seeded = lambda: torch.Generator(device=ctx.device).manual_seed(0)  # noqa: E731
    first, again = policy(x, seeded()), policy(x, seeded())
    gen = seeded()
    _sync(ctx.device)
    start = time.perf_counter()
    for _ in range(repeats):
        out = policy(x, gen)
    _sync(ctx.device)
    seconds = time.perf_counter() - start
    problems = [what for what, bad in (
        (f"shape {tuple(out.shape)} != {tuple(x.shape)}", out.shape != x.shape),
        (f"dtype {out.dtype} != {x.dtype}", out.dtype != x.dtype),
        (f"device {out.device} != {x.device}", out.device != x.device),
        ("non-finite values", not bool(torch.isfinite(out).all())),
        ("the same seed gave another batch", not torch.equal(first, again)),
    ) if bad]
    note = "; ".join(problems) or "same shape, dtype and device; finite; the same seed gives the same batch"
    return _row(3, case, "batched", ctx.device, not problems, note, seconds=seconds,
                samples_per_second=repeats * x.shape[0] / seconds)


# --- 4. a tiny study through snakemake, on the device and on the CPU ---------------------------------


def tiny_study(ctx: Context, device: str) -> dict:
    """Image data, two policies, two sizes and (on a GPU) two models: 8 runs, 4 per job, which
    pack_training auto trains together on CUDA and one by one on the CPU. Reduced: one model."""
    models = [{"name": "cnn2d", "width": 16}, {"name": "resnet18", "width": 8}]
    return {
        "study": "gpu-check-tiny",
        "dataset": {**ctx.images(), "train_pool": 256},
        "augmentations": {"none": [], "flip_crop": FLIP_CROP},
        "grid": {"n_train": [128, 256], "augmentation": ["none", "flip_crop"],
                 "model": models[:1] if ctx.reduced else models, "seed": [0]},
        "train": {"steps": ctx.sizes.study_steps, "batch_size": 32, "lr": 0.02, "warmup_steps": 2, "log_every": 10,
                  "device": device},
        "eval": {"batch_size": 256, "rankme": {"samples": 128}},
        "resources": {"runs_per_job": 4},
    }


def check_study(ctx: Context) -> list[dict]:
    from dataworth.bench import _run_study

    # On a CPU-only machine the "device" study asks for `auto`, which resolves to the CPU there:
    # the comparison, the run ids and the device check still run, and must agree exactly.
    device = "cuda" if not ctx.reduced else "auto"
    # On a GPU the whole workflow (fits, report); reduced, up to metrics.parquet, the rest being CPU-only.
    targets = () if not ctx.reduced else ("results/gpu-check-tiny/metrics.parquet",)
    # Both at once, each in its own folder: Snakemake's and each job's start-up leave cores idle.
    with ThreadPoolExecutor(max_workers=2) as pool:
        cpu_study, dev_study = (pool.submit(_run_study, ctx.repo, tiny_study(ctx, d), ctx.cores, targets)
                                for d in ("cpu", device))
        (wall_cpu, cpu, _, _), (wall_dev, dev, _, _) = cpu_study.result(), dev_study.result()
    case = (f"gpu-check-tiny: {len(cpu)} runs, {ctx.sizes.study_steps} steps, 4 runs per job, "
            f"{'all targets' if not targets else 'up to metrics.parquet'}")
    rows = [_row(4, case, "train.device: cpu", "cpu", (cpu["status"] == "ok").all(),
                 f"snakemake end to end; runs on {sorted(set(cpu['device']))}", seconds=wall_cpu)]

    problems = []
    if set(cpu["run_id"]) != set(dev["run_id"]):
        problems.append(f"run ids differ: {sorted(set(cpu['run_id']) ^ set(dev['run_id']))}")
    expected = "cuda" if not ctx.reduced else "cpu"
    if not dev["device"].str.startswith(expected).all():
        problems.append(f"runs trained on {sorted(set(dev['device']))}, not {expected}")
    losses = STUDY_LOSS if not ctx.reduced else Tolerance(0.0, 0.0)
    accuracies = STUDY_ACCURACY if not ctx.reduced else Tolerance(0.0, 0.0)
    worst, worst_ratio = (0.0, 0.0, ""), -1.0
    merged = dev.merge(cpu, on="run_id", suffixes=("", "_cpu"))
    for column, tolerance in [(c, losses) for c in ("train_loss", "test_loss", "ood_loss")] + \
                             [(c, accuracies) for c in ("train_accuracy", "test_accuracy", "ood_accuracy")]:
        for _, r in merged.iterrows():
            difference, bound = abs(r[column] - r[f"{column}_cpu"]), tolerance.bound(r[f"{column}_cpu"])
            if not difference <= bound:
                problems.append(f"run {r['run_id']} {column} {r[column]:.4f} vs. {r[f'{column}_cpu']:.4f} on the CPU")
            ratio = _ratio(difference, bound)
            if ratio > worst_ratio:
                worst, worst_ratio = (difference, bound, f"{column} of run {r['run_id']}"), ratio
    note = (f"same run ids; on {sorted(set(dev['device']))}; worst: {worst[2]} differs by {worst[0]:.4g} "
            f"(allowed {worst[1]:.4g}); losses {losses}, accuracies {accuracies}")
    if problems:
        note = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
    rows.append(_row(4, case, f"train.device: {device}", expected, not problems, note, seconds=wall_dev,
                     difference=worst[0], tolerance=worst[1]))
    return rows


# --- 5. determinism ----------------------------------------------------------------------------------


def check_determinism(ctx: Context) -> list[dict]:
    from dataworth.evaluate import evaluate_run
    from dataworth.files import load_torch
    from dataworth.tracking.schemas import HISTORY, read_parquet

    s = ctx.sizes
    data = ctx.prepared(ctx.images())
    run = study_runs(ctx, ctx.images(), [{"name": "resnet18", "width": s.pack_resnet_width}],
                     {"flip_crop": FLIP_CROP}, [512 if not ctx.reduced else 128], [0], s.pack_batch,
                     s.determinism_steps, max(1, s.determinism_steps // 4))[0]
    results = []
    for attempt in ("first", "second"):
        record, out = _train(ctx, run, data, f"determinism-{attempt}")
        summary = evaluate_run(out, data, threads=ctx.threads)
        history = read_parquet(out.history, HISTORY)["loss"].to_numpy()
        weights = load_torch(out.model)
        results.append((record, summary, history, weights))
    (_, first, h1, w1), (_, second, h2, w2) = results
    metric_diff = max(abs(first[c] - second[c]) for c in ("train_loss", "test_loss", "test_accuracy", "ood_accuracy"))
    history_diff = float(abs(h1 - h2).max())
    weight_diff = max(float((w1[k].float() - w2[k].float()).abs().max()) for k in w1)
    difference = max(metric_diff, history_diff)
    tolerance = RERUN[ctx.device.type]
    bound = tolerance.bound(abs(first["test_loss"]))
    identical = difference == 0 and weight_diff == 0
    note = (f"{'bitwise identical' if identical else 'not bitwise identical'}: loss history and metrics differ by "
            f"{difference:.3g}, weights by {weight_diff:.3g}; tolerance {tolerance}"
            + ("" if ctx.device.type == "cpu" else " (cuDNN may pick non-deterministic backward kernels)"))
    case = f"resnet18-{s.pack_resnet_width} synthetic 3x{s.image_size}x{s.image_size}, {s.determinism_steps} steps, twice"
    return [_row(5, case, "second run vs. first", ctx.device, difference <= bound, note,
                 difference=difference, tolerance=bound)]


CHECKS = {1: check_reference, 2: check_packing, 3: check_augment, 4: check_study, 5: check_determinism}


# --- the table, the file, the exit status ------------------------------------------------------------


def environment(device) -> dict:
    import torch

    return {
        "host": platform.node(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "none",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reduced": device.type != "cuda",
    }


def write_table(rows: list[dict], env: dict, out: Path):
    import pandas as pd

    from dataworth.tracking.schemas import GPU_CHECK, write_parquet

    table = pd.DataFrame([{**env, **row} for row in rows], columns=GPU_CHECK.names)
    write_parquet(table, GPU_CHECK, out)
    return table


def format_table(table) -> str:
    """The table, one line per check, then each check's note (criterion, context or error) by its row number."""
    import pandas as pd

    shown = table.assign(row=range(1, len(table) + 1), result=table["passed"].map({True: "pass", False: "FAIL"}))[
        ["row", "part", "part_name", "case", "variant", "result", "steps_per_second", "samples_per_second", "tflops",
         "peak_memory_mb", "projected_run_seconds", "runs_per_hour", "difference", "tolerance"]]
    shown = shown.rename(columns={"part_name": "check", "steps_per_second": "steps/s", "samples_per_second": "samples/s",
                                  "tflops": "TFLOP/s", "peak_memory_mb": "peak MB",
                                  "projected_run_seconds": "60k-step run s", "runs_per_hour": "runs/h"})
    with pd.option_context("display.max_rows", None, "display.width", 400, "display.max_colwidth", 120,
                           "display.float_format", lambda v: f"{v:,.4g}"):
        text = shown.fillna("").to_string(index=False)
    notes = [f"{i:>3}. {note}" for i, note in enumerate(table["note"], start=1)]
    return text + "\n\nnotes:\n" + "\n".join(notes)


def parse_parts(text: str) -> list[int]:
    """`1,3` or `reference,augment` (or a mix) -> part numbers; `all` -> every part."""
    if text == "all":
        return list(PARTS)
    numbers = {name: number for number, name in PARTS.items()}
    parts = []
    for item in text.split(","):
        item = item.strip()
        if item.isdigit() and int(item) in PARTS:
            parts.append(int(item))
        elif item in numbers:
            parts.append(numbers[item])
        else:
            allowed = ", ".join(f"{n} ({name})" for n, name in PARTS.items())
            raise argparse.ArgumentTypeError(f"unknown part {item!r}; allowed: all, or a comma-separated list of {allowed}")
    return sorted(set(parts))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpu-check", description="Acceptance check of the CUDA path: one table, a Parquet file, and exit "
        "status 1 naming every failed part. Without CUDA, a reduced form of the same parts on the CPU.")
    parser.add_argument("--out", default="results/gpu-check/gpu-check.parquet")
    parser.add_argument("--parts", type=parse_parts, default=list(PARTS),
                        help="all (default), or a comma-separated list of part numbers or names: "
                        + ", ".join(f"{n} {name}" for n, name in PARTS.items()))
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda when available, else the reduced CPU form")
    parser.add_argument("--repo", default=".", help="the checkout whose workflow and shipped studies are checked")
    parser.add_argument("--cores", type=int, default=None, help="snakemake --cores of part 4 (default: 4 on a "
                        "GPU machine, 2 on the CPU)")
    parser.add_argument("--inject-failure", type=parse_parts, default=[], metavar="PARTS",
                        help="make these parts fail (tests that a failure is reported and fails the check)")
    parser.add_argument("--inject-crash", type=parse_parts, default=[], metavar="PARTS",
                        help="make these parts' processes die of SIGSEGV, as a crash inside torch would (tests that "
                        "it is reported and fails the check)")
    # One part in a process of its own (run_check starts these): its rows as JSON into --rows.
    parser.add_argument("--part-worker", type=int, choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    return parser


def run_part(part: int, ctx: Context, inject: bool) -> list[dict]:
    """One part's rows; an exception is a failed row naming it (its traceback on stderr)."""
    try:
        if inject:
            raise InjectedFailure("injected by --inject-failure")
        return CHECKS[part](ctx)
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        message = (str(error).strip().splitlines() or [""])[-1]
        return [_row(part, PARTS[part], "", ctx.device, False, f"error: {type(error).__name__}: {message}")]


def _context(args, device, work: Path) -> Context:
    reduced = device.type != "cuda"
    return Context(device=device, sizes=REDUCED if reduced else FULL, work=work, repo=Path(args.repo).resolve(),
                   cores=args.cores or (2 if reduced else 4), threads=1)


def part_worker(args) -> int:
    import json

    import torch

    from dataworth.files import write_text_atomic

    if args.part_worker in args.inject_crash:
        os.kill(os.getpid(), signal.SIGSEGV)
    ctx = _context(args, torch.device(args.device), Path(args.work))
    rows = run_part(args.part_worker, ctx, args.part_worker in args.inject_failure)
    write_text_atomic(args.rows, json.dumps(rows, default=lambda value: value.item()))
    return 0


def _part_in_own_process(part: int, args, device, work: Path) -> list[dict]:
    """Run `part` in a fresh process: a crash of torch itself (a segfault in compiled code, a CUDA
    error that poisons the context) fails that part, named, and the next part starts clean; each
    part's peak memory is its own."""
    import json
    import subprocess

    rows = work / f"part-{part}.json"
    command = [sys.executable, "-m", "dataworth.gpucheck", "--part-worker", str(part), "--rows", str(rows),
               "--work", str(work), "--device", device.type, "--repo", str(args.repo)]
    command += ["--cores", str(args.cores)] if args.cores else []
    command += ["--inject-failure", str(part)] if part in args.inject_failure else []
    command += ["--inject-crash", str(part)] if part in args.inject_crash else []
    code = subprocess.run(command).returncode  # its output goes where ours does
    if code == 0 and rows.exists():
        return json.loads(rows.read_text())
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return [_row(part, PARTS[part], "", device, False, f"error: the part's process ended ({how}) before its result")]


def run_check(args) -> int:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"error: --device cuda but CUDA is not available on {platform.node()}; allowed here: auto or cpu",
              file=sys.stderr)
        return 2
    if args.part_worker:
        return part_worker(args)
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    env = environment(device)
    reduced = env["reduced"]
    banner = NO_GPU if reduced else f"GPU: {env['gpu']}, torch {env['torch']}, CUDA {env['cuda']}"
    print(f"gpu-check {env['date']} on {env['host']}: {banner}", flush=True)
    out = Path(args.out)
    began = time.perf_counter()
    rows: list[dict] = []
    failed: list[int] = []
    with tempfile.TemporaryDirectory(prefix="dataworth-gpu-check-") as tmp:
        for part in args.parts:
            name = PARTS[part]
            print(f"part {part} ({name}) ...", flush=True)
            start = time.perf_counter()
            part_rows = _part_in_own_process(part, args, device, Path(tmp))
            rows += part_rows
            if not all(row["passed"] for row in part_rows):
                failed.append(part)
            print(f"part {part} ({name}): {'FAILED' if part in failed else 'passed'} in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
            table = write_table(rows, env, out)  # after every part: a crash later keeps what was measured
    print()
    print(format_table(table))
    print(f"\nwritten to {out}; the check took {time.perf_counter() - began:.0f} s")
    if reduced:
        print(NO_GPU)
    if failed:
        print("gpu-check FAILED: " + ", ".join(f"part {p} ({PARTS[p]})" for p in failed), file=sys.stderr)
        return 1
    print(f"gpu-check passed: {', '.join(f'part {p} ({PARTS[p]})' for p in args.parts)}"
          + (" (reduced CPU form, no GPU used)" if reduced else f" on {env['gpu']}"))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_check(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
