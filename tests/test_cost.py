"""`dataworth plan`'s cost lines (issue 18 item 3): SLURM jobs, and device-hours from a cached step time."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

import dataworth.cost as cost
from dataworth.plan import print_plan
from dataworth.study import load_study


def plan_text(study, results, timing=True) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_plan(study, results, timing=timing)
    return out.getvalue()


def test_plan_times_each_model_once_then_reads_the_cache(tiny_study, tmp_path, monkeypatch):
    tiny_study["resources"] = {"runs_per_job": 2}
    study = load_study(tiny_study)  # 4 runs of one cnn1d: 2 packs, each a train, evaluate and rankme job
    measured = []
    real = cost.time_step
    monkeypatch.setattr(cost, "time_step", lambda *a, **k: measured.append(a[5]) or real(*a, **k))
    first = plan_text(study, tmp_path)
    assert "cost: 4 runs, 6 SLURM jobs (2 train + 4 evaluation; resources.runs_per_job 2)" in first
    assert measured[0] == cost.CPU_TIMING_BATCH and measured[1:] in ([], [32])  # (the next test: when 32)
    cache = json.loads((tmp_path / cost.CACHE_NAME).read_text())
    [(key, seconds)] = cache.items()
    assert json.loads(key)["model"] == {"name": "cnn1d", "width": 8} and seconds > 0
    # steps x seconds per step x runs, in hours, on this (CPU-only) machine
    hours = 40 * seconds * 4 / 3600
    assert f"about {hours:,.1f} CPU-hours of training on CPU" in first

    monkeypatch.setattr(cost, "time_step", lambda *a, **k: pytest.fail("timed again despite the cache"))
    assert plan_text(study, tmp_path).splitlines()[-1] == first.splitlines()[-1]
    skipped = plan_text(study, tmp_path / "elsewhere", timing=False)
    assert "step timing skipped (--no-timing)" in skipped and not (tmp_path / "elsewhere" / cost.CACHE_NAME).exists()


def test_a_large_network_on_a_cpu_is_timed_at_a_small_batch_and_scaled(tiny_study, tmp_path, monkeypatch):
    study = load_study(tiny_study)
    batches = []
    monkeypatch.setattr(cost, "time_step", lambda *a, **k: batches.append(a[5]) or 1.0)  # 1 s per step
    times, label = cost.step_times(study, tmp_path)
    assert batches == [cost.CPU_TIMING_BATCH]  # 1 s x 32 / 8 = 4 s: above the full-batch threshold
    assert list(times.values()) == [4.0] and label.startswith("CPU")


def test_a_small_network_on_a_cpu_is_timed_again_at_its_full_batch(tiny_study, tmp_path, monkeypatch):
    study = load_study(tiny_study)
    batches = []
    # 0.1 s at batch 8 would scale to 0.4 s at 32: below the threshold, so the real batch is timed.
    monkeypatch.setattr(cost, "time_step", lambda *a, **k: batches.append(a[5]) or (0.1 if a[5] == 8 else 0.25))
    times, _ = cost.step_times(study, tmp_path)
    assert batches == [cost.CPU_TIMING_BATCH, 32] and list(times.values()) == [0.25]
