"""Cost before launch (issue 18 item 3): what a study asks of the cluster, from a measured step time.

`dataworth plan` ends with this: the number of runs, of SLURM jobs (one per pack and stage), and the
device-hours of training, from a short timing of each of the study's models on this machine: one
training step (forward, backward, optimizer step, at the study's batch size and input shape, in
bf16 autocast on CUDA as training runs) timed over a few steps after warm-up. A run's estimate is
its steps times that step time; augmentation, evaluation and start-up are not included (on a GPU,
the batched augmentation adds little; see `dataworth bench`).

On a CPU, a full batch of a large network would take minutes, so the step is first timed at a
batch of at most CPU_TIMING_BATCH and scaled linearly to the study's batch (CPU throughput is
about linear in the batch for such networks); a network whose scaled step is under
FULL_BATCH_BELOW_SECONDS is timed again at the full batch, since at a small batch its step is
mostly fixed overhead. Timings are cached under `<results>/.step-times.json`, keyed by the model, batch,
input shape, optimizer, device name and torch version, so a second `plan` is instant; the output
says which device the timing came from (on a CPU-only machine the estimate is CPU-hours).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

CPU_TIMING_BATCH = 8
FULL_BATCH_BELOW_SECONDS = 2.0  # CPU: a step estimated faster than this is timed at the full batch
WARMUP_STEPS = 2
TIMED_STEPS = {"cuda": 10, "cpu": 3}
CACHE_NAME = ".step-times.json"
# Self-supervised steps push two views of every image through the network.
VIEWS = {"supervised": 1}


def device_of(study) -> "torch.device":
    import torch

    name = study.spec.train.device
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name if name != "cuda" or torch.cuda.is_available() else "cpu")


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def time_step(model_cfg: dict, train_cfg: dict, sample_shape: tuple[int, ...], num_classes: int, device,
              batch: int) -> float:
    """Seconds of one training step of a fresh model at `batch` on `device` (median of the timed steps)."""
    import torch

    from dataworth.models import build_run_model
    from dataworth.train.loop import fast_path, make_optimizer

    gen = torch.Generator().manual_seed(0)
    model = build_run_model(model_cfg, tuple(sample_shape), num_classes).to(device).train()
    x = torch.randn(batch, *sample_shape, generator=gen).to(device)
    y = torch.randint(0, num_classes, (batch,), generator=gen).to(device)
    layout = fast_path(model, x, train_cfg)
    optimizer = make_optimizer(model, train_cfg, device)
    use_amp = device.type == "cuda"

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = torch.nn.functional.cross_entropy(model(layout(x)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(WARMUP_STEPS):
        step()
    sync()
    times = []
    for _ in range(TIMED_STEPS.get(device.type, 2)):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _timing_key(study, model_cfg: dict, device_label: str) -> str:
    """What a step time depends on: the model, the batch, the optimizer, the data (its input shape),
    the device and the torch version."""
    import torch

    train = study.spec.train
    return json.dumps({"model": model_cfg, "batch_size": train.batch_size, "optimizer": train.optimizer,
                       "dataset": study.dataset_id(), "device": device_label, "torch": torch.__version__},
                      sort_keys=True)


def _data_shape(study) -> tuple[tuple[int, ...], int]:
    """The study's input shape and number of classes (prepares the dataset if needed)."""
    ds = study.spec.dataset
    if ds.stores_pixels:
        meta = ds.prepared()
        return tuple(meta["sample_shape"]), int(meta["num_classes"])
    arrays = ds.build()
    return tuple(arrays["x_train"].shape[1:]), int(arrays["y_train"].max()) + 1


def step_times(study, results_root: str | Path) -> tuple[dict[str, float], str]:
    """{model config as JSON: seconds per training step at the study's batch}, and the device's name.
    Measured once per model, device and torch version; read from the cache afterwards."""
    from dataworth.files import write_text_atomic

    device = device_of(study)
    label = device_name(device)
    train_cfg = study.spec.train.model_dump()
    cache_path = Path(results_root) / CACHE_NAME
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: time again
        cache = {}
    times, data = {}, None
    for model_cfg in {json.dumps(run["model"], sort_keys=True): run["model"] for run in study.runs}.values():
        key = _timing_key(study, model_cfg, label)
        if key not in cache:
            data = data or _data_shape(study)
            full = train_cfg["batch_size"]
            batch = full if device.type == "cuda" else min(full, CPU_TIMING_BATCH)
            seconds = time_step(model_cfg, train_cfg, *data, device, batch) * full / batch
            if batch < full and seconds < FULL_BATCH_BELOW_SECONDS:
                # A small network's step at a small batch is mostly fixed overhead: time the real batch.
                seconds = time_step(model_cfg, train_cfg, *data, device, full)
            cache[key] = seconds
        times[json.dumps(model_cfg, sort_keys=True)] = cache[key]
    if data is not None:  # something was timed
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache_path, json.dumps(cache, indent=1, sort_keys=True) + "\n")
        except OSError:  # an unwritable results root costs the next plan a timing, nothing else
            pass
    return times, label


def slurm_jobs(packs) -> dict[str, int]:
    """Jobs the workflow submits: one per pack and stage (train, then each evaluation)."""
    jobs = {"train": 0, "evaluation": 0}
    for pack_id in packs.members:
        for stage in packs.stages(pack_id):
            jobs["train" if stage == "train" else "evaluation"] += 1
    return jobs


def print_cost(study, packs, results_root: str | Path, timing: bool = True) -> None:
    jobs = slurm_jobs(packs)
    runs = len(study.runs)
    print(f"cost: {runs} runs, {jobs['train'] + jobs['evaluation']} SLURM jobs "
          f"({jobs['train']} train + {jobs['evaluation']} evaluation; resources.runs_per_job "
          f"{study.spec.resources.runs_per_job})")
    if not timing:
        print("cost: step timing skipped (--no-timing): no device-hours estimate")
        return
    times, label = step_times(study, results_root)
    device = device_of(study)
    unit = "GPU-hours" if device.type == "cuda" else "CPU-hours"
    steps = study.spec.train.steps
    total = 0.0
    by_model: dict[str, list] = {}
    for run in study.runs:
        key = json.dumps(run["model"], sort_keys=True)
        views = VIEWS.get(run["method"], 2)
        hours = steps * times[key] * views / 3600
        total += hours
        entry = by_model.setdefault(key, [run["model"], 0, times[key], 0.0])
        entry[1] += 1
        entry[3] += hours
    for model_cfg, count, seconds, hours in by_model.values():
        options = ", ".join(f"{k} {v}" for k, v in model_cfg.items() if k not in ("name", "width"))
        print(f"cost: {model_cfg['name']} width {model_cfg['width']}{' (' + options + ')' if options else ''}: "
              f"{seconds * 1000:.1f} ms/step x {steps} steps x {count} runs = {hours:,.1f} {unit}")
    scaled = "" if device.type == "cuda" else f"; larger networks timed at batch {CPU_TIMING_BATCH} and scaled"
    print(f"cost: about {total:,.1f} {unit} of training on {label} (batch {study.spec.train.batch_size}{scaled}; "
          f"augmentation and evaluation not included{'' if device.type == 'cuda' else '; no GPU here: a GPU is far faster'})")
