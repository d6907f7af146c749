"""Benchmarks: every figure is a ratio against a baseline measured in the same process.

`dataworth bench` (`make bench`) prints a table and writes results/bench/bench.parquet:
1. trainer: dataworth's training loop against the loop users write today (a Dataset with
   per-sample Python transforms, a DataLoader with worker processes), same model, optimizer,
   batch size and steps;
2. augment: each batched policy against the same ops applied sample by sample, and the paper's
   image policies (TrivialAugment, RandAugment, AutoAugment, flip + crop, perspective, the SSL
   view) against the per-image Pillow pipeline a DataLoader would run;
3. packing: K runs trained together (train/packed.py) against the same K runs one by one;
4. study: the default study end to end against the sum of its runs' training compute, and the
   fixed cost per run (process start to first step); with the study's runs_per_job and with one
   run per job;
5. data: loading a dataset from its prepared uint8 cache against reading its original files (a
   CINIC-10-shaped PNG folder written on the fly), and 32x32 RGB images per second fed to the
   trainer at batch 128 from uint8 pixels normalised per batch against stored float32.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from dataworth.augment import build_policy
from dataworth.data import load_dataset, nested_subset, prepare_dataset
from dataworth.models import build_model
from dataworth.tracking.schemas import BENCH, write_parquet
from dataworth.train.loop import BatchStream, Member, make_optimizer, train_model
from dataworth.train.packed import train_packed

RECIPE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "warmup_steps": 0,
          "label_smoothing": 0.0, "batch_size": 128}
SIGNAL_POLICY = [{"op": "shift", "max_shift": 6}, {"op": "scale", "min": 0.8, "max": 1.2},
                 {"op": "correlated_noise", "std": 0.3}]
IMAGE_POLICY = [{"op": "flip"}, {"op": "crop", "padding": 1}, {"op": "cutout", "size": 3}]
TRAINER_CASES = [  # dataset, model, width, policy
    ("mnist1d", "mlp", 256, SIGNAL_POLICY),
    ("mnist1d", "cnn1d", 32, SIGNAL_POLICY),
    ("digits", "cnn2d", 16, IMAGE_POLICY),
    ("digits", "resnet18", 16, IMAGE_POLICY),
]
# The reference case, on CUDA only (minutes per step on a CPU): random 32x32 RGB images,
# as CIFAR-10 has (no download: throughput does not depend on the pixels).
REFERENCE_CASE = ("cifar-shaped", "resnet18", 64, IMAGE_POLICY)
AUGMENT_CASES = {
    "shift": [SIGNAL_POLICY[0]], "scale": [SIGNAL_POLICY[1]], "correlated_noise": [SIGNAL_POLICY[2]],
    "noise": [{"op": "noise", "std": 0.1}], "shift_scale_noise": SIGNAL_POLICY,
    "flip": [IMAGE_POLICY[0]], "crop": [IMAGE_POLICY[1]], "cutout": [IMAGE_POLICY[2]], "flip_crop_cutout": IMAGE_POLICY,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark (KB on Linux)


def _time_variants(variants: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Seconds of `repeats` calls of each variant's function, after one warm-up call each."""
    timings = {}
    for variant, fn in variants.items():
        fn()
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        _sync(device)
        timings[variant] = time.perf_counter() - start
    return timings


def _row(section, case, variant, device, seconds, samples=None, steps=None, baseline_seconds=None, **extra):
    return {
        "section": section, "case": case, "variant": variant, "device": str(device), "seconds": seconds,
        "samples_per_second": samples / seconds if samples else None,
        "steps_per_second": steps / seconds if steps else None,
        "speedup": baseline_seconds / seconds if baseline_seconds else None,
        "peak_memory_mb": extra.get("peak_memory_mb"), "note": extra.get("note", ""),
    }


# --- 1. trainer against the DataLoader baseline -------------------------------------------------


class PerSampleDataset(torch.utils.data.Dataset):
    """The usual way: one sample at a time, its transform applied in Python in a worker."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, ops: list[dict], seed: int):
        self.x, self.y, self.ops, self.seed = x, y, ops, seed
        self.policy, self.gen = None, None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        if self.policy is None:  # built in the worker process
            self.policy = build_policy(self.ops)
            info = torch.utils.data.get_worker_info()
            self.gen = torch.Generator().manual_seed(self.seed + (info.id if info else 0))
        return self.policy(self.x[i : i + 1], self.gen)[0], self.y[i]


def _baseline_train(model, x, y, ops, cfg, steps, warmup, workers, device) -> float:
    """The usual loop: batches from DataLoader workers (pinned and copied to a GPU, if one),
    float32, the same model, optimizer and steps."""
    loader = torch.utils.data.DataLoader(
        PerSampleDataset(x, y, ops, 0), batch_size=cfg["batch_size"], shuffle=True, drop_last=True,
        num_workers=workers, persistent_workers=workers > 0, pin_memory=device.type == "cuda",
    )
    model = model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    done, start = 0, None
    while done < steps + warmup:
        for xb, yb in loader:
            if done == warmup:
                _sync(device)
                start = time.perf_counter()
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps + warmup:
                break
    _sync(device)
    return time.perf_counter() - start


def _dataworth_train(model, x, y, ops, cfg, steps, warmup) -> float:
    gen = lambda: torch.Generator(device=x.device).manual_seed(0)
    train_model(model, x, y, build_policy(ops), dict(cfg, steps=warmup, log_every=warmup), gen(), gen())
    _sync(x.device)
    start = time.perf_counter()
    train_model(model, x, y, build_policy(ops), dict(cfg, steps=steps, log_every=max(50, steps // 4)), gen(), gen())
    _sync(x.device)
    return time.perf_counter() - start


def bench_trainer(datasets: dict, device: torch.device, steps: int, workers: int, compile: bool) -> list[dict]:
    """Each case: the DataLoader baseline, dataworth's loop, and (with `compile`) dataworth's loop
    with train.compile; on CUDA also the reference case, ResNet-18 width 64 on 32x32 images."""
    rows, warmup = [], 10
    cases = TRAINER_CASES + ([REFERENCE_CASE] if device.type == "cuda" else [])
    for name, model_name, width, ops in cases:
        data = datasets[name]
        case = f"{name} {model_name}-{width} batch {RECIPE['batch_size']}"
        cfg = dict(RECIPE)
        make = lambda: build_model(model_name, width, data.sample_shape, data.num_classes)
        x_cpu, y_cpu = data.x["train"].cpu(), data.y["train"].cpu()
        samples = steps * cfg["batch_size"]
        baseline = _baseline_train(make(), x_cpu, y_cpu, ops, cfg, steps, warmup, workers, device)
        rows.append(_row("trainer", case, f"DataLoader baseline ({workers} workers, float32)", device, baseline,
                         samples, steps, note=_flops_note(model_name, width, samples, baseline, data)))
        for variant, variant_cfg in (("dataworth", cfg), ("dataworth + torch.compile", dict(cfg, compile=True))):
            if variant_cfg.get("compile") and not compile:
                continue
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            ours = _dataworth_train(make().to(device), data.x["train"].to(device), data.y["train"].to(device), ops,
                                    variant_cfg, steps, warmup)
            rows.append(_row("trainer", case, variant, device, ours, samples, steps, baseline,
                             peak_memory_mb=_peak_memory_mb(device),
                             note=_flops_note(model_name, width, samples, ours, data)))
    return rows


def _flops_note(model_name: str, width: int, samples: int, seconds: float, data) -> str:
    """For the reference case: the arithmetic rate reached, against the forward + backward FLOPs
    of one training sample measured by models/flops.py (3.33 GFLOP for ResNet-18 width 64, 32x32)."""
    if (model_name, width, data.sample_shape) != ("resnet18", 64, (3, 32, 32)):
        return ""
    from dataworth.models.flops import flops_per_sample

    flops = flops_per_sample(model_name, width, data.sample_shape, data.num_classes)
    return f"{samples * flops / seconds / 1e12:.1f} TFLOP/s at {flops / 1e9:.2f} GFLOP per training sample (measured)"


# --- 2. batched augmentation against a per-sample loop --------------------------------------------


def bench_augment(datasets: dict, device: torch.device, batch: int, repeats: int) -> list[dict]:
    rows = []
    for name, ops in AUGMENT_CASES.items():
        data = datasets["digits" if name in ("flip", "crop", "cutout", "flip_crop_cutout") else "mnist1d"]
        x = data.x["train"][:batch].to(device)
        policy, gen = build_policy(ops), torch.Generator(device=device).manual_seed(0)

        def per_sample():
            return torch.cat([policy(x[i : i + 1], gen) for i in range(len(x))])

        timings = _time_variants({"per-sample loop": per_sample, "batched": lambda: policy(x, gen)}, device, repeats)
        rows.append(_row("augment", f"{name} batch {batch}", "per-sample loop", device, timings["per-sample loop"],
                         repeats * batch))
        rows.append(_row("augment", f"{name} batch {batch}", "batched", device, timings["batched"], repeats * batch,
                         baseline_seconds=timings["per-sample loop"]))
    return rows


# --- 2b. the paper's image policies against the per-image Pillow pipeline (issue 17) ----------------

IMAGE_POLICY_CASES = {  # name in pillow_pipeline.PIPELINES -> the same policy as a study's ops
    "trivial_augment": [{"op": "trivial_augment"}],
    "rand_augment": [{"op": "rand_augment", "num_ops": 2, "magnitude": 9}],
    "auto_augment": [{"op": "auto_augment"}],
    "flip_crop": [{"op": "hflip"}, {"op": "crop", "padding": 4}],
    "perspective": [{"op": "perspective"}],
    "ssl_view": [{"op": "resized_crop"}, {"op": "hflip"}, {"op": "color_jitter"}, {"op": "grayscale"},
                 {"op": "gaussian_blur", "kernel_size": 3}, {"op": "solarize"}],
}


def pixel_images(n: int, device, seed: int = 0) -> torch.Tensor:
    """CIFAR-shaped float 0..255 images with structure (gradients, a bright square, noise), so that
    histogram and colour ops do real work; no download."""
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, 32)
    base = torch.rand(n, 3, 1, 1, generator=gen) * 255 * ramp[None, None, :, None] \
        + torch.rand(n, 3, 1, 1, generator=gen) * 255 * (1 - ramp[None, None, None, :])
    base[:, :, 8:20, 10:22] = torch.rand(n, 3, 1, 1, generator=gen) * 255
    base = base / 2 + torch.randn(n, 3, 32, 32, generator=gen) * 12
    return base.round().clamp(0, 255).to(device)


def bench_image_augment(device: torch.device, batch: int = 128, repeats: int = 10) -> list[dict]:
    """Each image policy, batched on `device`, against the per-image Pillow pipeline users run in a
    DataLoader (tensor -> PIL -> op -> tensor, one image at a time, one CPU core), batch 128, 32x32 RGB."""
    from dataworth.augment.pillow_pipeline import run_per_image

    x_cpu = pixel_images(batch, "cpu")
    x = x_cpu.to(device)
    # One core each on a CPU: the Pillow pipeline runs one image at a time on one core (a
    # DataLoader worker), and torch's intra-op threads only add waiting on a busy machine.
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        rows = _image_policy_rows(device, x, x_cpu, batch, repeats, run_per_image)
    finally:
        torch.set_num_threads(threads)
    return rows


def _time_interleaved(variants: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Like _time_variants, but the variants' calls alternate and each variant's figure is the
    median call x `repeats`: both sides see the same load, and a burst of other work during a few
    calls moves neither figure. On a CPU the clock is the process's CPU time (both sides run on
    one thread of this process): on a shared machine wall time swung 2-4x from run to run, CPU
    time by a few percent. On a GPU, wall time after a device sync."""
    import statistics

    clock = time.process_time if device.type == "cpu" else time.perf_counter
    calls = {variant: [] for variant in variants}
    for fn in variants.values():
        fn()
    for _ in range(repeats):
        for variant, fn in variants.items():
            _sync(device)
            start = clock()
            fn()
            _sync(device)
            calls[variant].append(clock() - start)
    return {variant: statistics.median(times) * repeats for variant, times in calls.items()}


def _image_policy_rows(device, x, x_cpu, batch, repeats, run_per_image) -> list[dict]:
    import random

    rows = []
    for name, ops in IMAGE_POLICY_CASES.items():
        policy, gen, rng = build_policy(ops), torch.Generator(device=device).manual_seed(0), random.Random(0)
        timings = _time_interleaved({"per-image Pillow": lambda: run_per_image(name, x_cpu, rng),
                                     "batched": lambda: policy(x, gen)}, device, repeats)
        case = f"{name} batch {batch} 32x32 RGB"
        rows.append(_row("augment", case, "per-image Pillow (1 core)", "cpu", timings["per-image Pillow"], repeats * batch))
        rows.append(_row("augment", case, "batched", device, timings["batched"], repeats * batch,
                         baseline_seconds=timings["per-image Pillow"],
                         note=("1 thread, process CPU time; " if device.type == "cpu" else "") + "median of interleaved calls"))
    return rows


# --- 3. packed runs against the same runs one by one ------------------------------------------------


def _members(data, k: int, device) -> list[Member]:
    members = []
    for i in range(k):
        subset = torch.as_tensor(nested_subset(data.y["train"].cpu().numpy(), 500, i), device=device)
        members.append(Member(
            x=data.x["train"].to(device)[subset], y=data.y["train"].to(device)[subset],
            policy=build_policy(SIGNAL_POLICY),
            batch_gen=torch.Generator(device=device).manual_seed(i),
            augment_gen=torch.Generator(device=device).manual_seed(1000 + i),
        ))
    return members


def bench_packing(datasets: dict, device: torch.device, steps: int, ks: tuple[int, ...]) -> list[dict]:
    rows, data = [], datasets["mnist1d"]
    cfg = dict(RECIPE, steps=steps, log_every=max(50, steps // 4))
    make = lambda i: build_model("cnn1d", 32, data.sample_shape, data.num_classes).to(device)
    for k in ks:
        case = f"mnist1d cnn1d-32, {k} run(s) of {steps} steps"
        members = _members(data, k, device)
        start = time.perf_counter()
        for i, m in enumerate(members):
            train_model(make(i), m.x, m.y, m.policy, cfg, m.batch_gen, m.augment_gen)
        _sync(device)
        sequential = time.perf_counter() - start
        rows.append(_row("packing", case, "one after another", device, sequential, k * steps * cfg["batch_size"],
                         k * steps))
        members = _members(data, k, device)
        start = time.perf_counter()
        train_packed([make(i) for i in range(k)], members, cfg)
        _sync(device)
        packed = time.perf_counter() - start
        rows.append(_row("packing", case, f"packed (K={k})", device, packed, k * steps * cfg["batch_size"], k * steps,
                         sequential))
    return rows


# --- 5. dataset files: the prepared cache, and feeding the trainer from uint8 pixels ---------------


def _write_png_folder(root: Path, n: int, gen: torch.Generator) -> None:
    """A CINIC-10-shaped pool: cinic-10/{train,valid,test}/<class>/*.png, random 32x32 RGB."""
    from PIL import Image

    from dataworth.data.sources import CIFAR10_CLASSES

    pixels = torch.randint(0, 256, (n, 32, 32, 3), generator=gen, dtype=torch.uint8).numpy()
    for split in ("train", "valid", "test"):
        for label, cls in enumerate(CIFAR10_CLASSES):
            (root / "cinic-10" / split / cls).mkdir(parents=True)
        for i in range(n):
            cls = CIFAR10_CLASSES[i % 10]
            Image.fromarray(pixels[i]).save(root / "cinic-10" / split / cls / f"n{i:07d}.png")


def bench_data(device: torch.device, images: int, batches: int) -> list[dict]:
    from dataworth.data import _LOADED
    from dataworth.data.readers import read_image_folder
    from dataworth.data.sources import CIFAR10_CLASSES

    rows = []
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="dataworth-bench-data-") as tmp:
        root = Path(tmp)
        _write_png_folder(root, images, gen)
        config = {"name": "cinic10", "root": str(root), "pool": "train+valid", "ood": "cinic10:test"}
        prepare_dataset(config, root / "data.pt")  # converts once (not timed: it happens once per root)
        case = f"CINIC-10-shaped pool, {2 * images:,} 32x32 PNGs"
        start = time.perf_counter()
        for split in ("train", "valid"):
            read_image_folder(root / "cinic-10" / split, list(CIFAR10_CLASSES), mode="RGB")
        originals = time.perf_counter() - start
        rows.append(_row("data", case, "read the original PNG files", "cpu", originals, 2 * images))
        _LOADED.clear()
        start = time.perf_counter()
        data = load_dataset(root / "data.pt", device)
        _sync(device)
        cached = time.perf_counter() - start
        rows.append(_row("data", case, "load the prepared uint8 cache", device, cached, 2 * images,
                         baseline_seconds=originals, note="all three splits, onto the device"))

        # Feeding the trainer: batch indices, gather, (no augmentation), normalise: the loop's work
        # before the forward pass. Baseline: the pool stored as standardised float32 (4x the memory).
        batch = RECIPE["batch_size"]
        x_pixels = data.x["train"]
        x_float = data.eval_input(x_pixels)
        feed = data.training_policy(lambda b, g: b)
        variants = (("stored float32, standardised", lambda idx: x_float[idx]),
                    ("stored uint8, normalised per batch", lambda idx: feed(x_pixels[idx], None)))
        timings = {}
        for variant, fetch in variants:
            stream = BatchStream(len(x_pixels), batch, torch.Generator(device=device).manual_seed(0), device)
            fetch(stream.next())
            _sync(device)
            start = time.perf_counter()
            for _ in range(batches):
                out = fetch(stream.next())
            _sync(device)
            timings[variant] = time.perf_counter() - start
            assert out.dtype == torch.float32 and out.shape == (batch, 3, 32, 32)
        base = "stored float32, standardised"
        for variant, seconds in timings.items():
            rows.append(_row("data", f"32x32 RGB fed to the trainer, batch {batch}", variant, device, seconds,
                             batches * batch, batches, None if variant == base else timings[base],
                             note=f"pool {x_pixels.element_size() * x_pixels.nelement() / 2**20:.0f} MB as uint8"
                             if variant != base else ""))
        _LOADED.clear()
    return rows


# --- 4. the default study end to end ------------------------------------------------------------


def _run_study(repo: Path, spec: dict, cores: int, targets: tuple[str, ...] = ()) -> tuple[float, pd.DataFrame, list[float], int]:
    """Run the study `spec` from scratch in a temporary copy of the workflow with real Snakemake
    (its default target, or `targets`); its wall seconds, metrics table, each run's start-up
    seconds and its number of packs."""
    import json

    import yaml

    from dataworth.study import load_study
    from dataworth.tracking.schemas import METRICS, TRAINING, read_parquet

    with tempfile.TemporaryDirectory(prefix="dataworth-bench-") as tmp:
        root = Path(tmp)
        shutil.copy(repo / "Snakefile", root / "Snakefile")
        shutil.copytree(repo / "workflow", root / "workflow")
        (root / "profiles").symlink_to("workflow/profiles")
        (root / "params.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        bin_dir = Path(sys.executable).parent  # the rules call `dataworth`: it must be on PATH
        env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        start = time.perf_counter()
        proc = subprocess.run([str(bin_dir / "snakemake"), "--cores", str(cores), *targets], cwd=root, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"the study failed under Snakemake:\n{proc.stderr[-3000:]}")
        study_dir = load_study(spec).study_dir(root / "results")
        metrics = read_parquet(study_dir.metrics, METRICS)
        startup = [read_parquet(p, TRAINING)["startup_seconds"].iloc[0] for p in study_dir.runs.glob("*/training.parquet")]
        packs = len(json.loads(study_dir.packs_json.read_text())["packs"])
    return wall, metrics, startup, packs


def bench_study(repo: Path, study: str, cores: int) -> list[dict]:
    """The study end to end, with its runs_per_job and with one run per job (the baseline), each
    against the sum of its runs' training compute divided by the cores."""
    import yaml

    spec = yaml.safe_load((repo / study).read_text())
    per_job = spec.get("resources", {}).get("runs_per_job", 1)
    variants = [1] if per_job == 1 else [1, per_job]
    rows, baseline = [], None
    for k in variants:
        spec.setdefault("resources", {})["runs_per_job"] = k
        wall, metrics, startup, jobs = _run_study(repo, spec, cores)
        compute = metrics["compute_seconds"].sum()
        ideal = compute / cores  # the wall time if the cores did nothing but training steps
        case = f"{study} end to end, {k} run{'s' if k > 1 else ''} per job"
        note = f"{len(metrics)} runs in {jobs} train jobs on {cores} cores; training compute {compute:.0f} s"
        rows += [
            _row("study", case, "sum of training compute / cores", "cpu", ideal),
            _row("study", case, "snakemake wall time", "cpu", wall, baseline_seconds=ideal,
                 note=f"{note}; overhead {(wall - ideal) / wall:.0%} of wall time"),
            _row("study", f"fixed cost per run, {k} run{'s' if k > 1 else ''} per job",
                 "process start to first step (mean)", "cpu", sum(startup) / len(startup),
                 note="imports, data load, model build (the first run of a job pays the imports)"),
        ]
        if baseline is None:
            baseline = wall
        else:
            rows.append(_row("study", f"{study}: {k} runs per job vs. 1", "snakemake wall time", "cpu", wall,
                             baseline_seconds=baseline, note="speedup over one run per job, same study"))
    return rows


def run_benchmarks(out: Path, device: str = "auto", quick: bool = False, study: str | None = "params.yaml",
                   repo: Path = Path("."), workers: int = 2, cores: int = 2) -> pd.DataFrame:
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    with tempfile.TemporaryDirectory() as tmp:
        datasets = {}
        for name, config in (("mnist1d", {"name": "mnist1d", "train_pool": 4000}), ("digits", {"name": "digits"})):
            prepare_dataset(config, Path(tmp) / f"{name}.pt")
            datasets[name] = load_dataset(Path(tmp) / f"{name}.pt", dev)
    rows = []
    rows += bench_augment(datasets, dev, batch=128, repeats=3 if quick else 20)
    rows += bench_image_augment(dev, batch=128, repeats=2 if quick else 10)
    if dev.type == "cuda":
        datasets["cifar-shaped"] = _random_images(dev)
    rows += bench_trainer(datasets, dev, steps=5 if quick else 200, workers=workers, compile=not quick)
    rows += bench_packing(datasets, dev, steps=5 if quick else 200, ks=(1, 4) if quick else (1, 4, 16))
    rows += bench_data(dev, images=300 if quick else 5000, batches=20 if quick else 400)
    table = _write(rows, out)  # written before the study, which takes minutes and may fail
    if study:
        table = _write(rows + bench_study(repo, study, cores), out)
    return table


def _random_images(device: torch.device, n: int = 10_000):
    from dataworth.data import Dataset

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return Dataset(meta={"num_classes": 10, "sample_shape": [3, 32, 32]}, x={"train": x.to(device)},
                   y={"train": y.to(device)})


def _write(rows: list[dict], out: Path) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    table.insert(0, "host", platform.node())
    table.insert(1, "torch", torch.__version__)
    write_parquet(table, BENCH, out)
    return table


def format_table(table: pd.DataFrame) -> str:
    shown = table[["section", "case", "variant", "device", "seconds", "samples_per_second", "speedup", "peak_memory_mb", "note"]]
    with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 60,
                           "display.float_format", lambda v: f"{v:,.2f}"):
        return shown.fillna("").to_string(index=False)
