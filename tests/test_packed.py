"""Packed training equals separate training (CPU, within floating-point tolerance)."""

from __future__ import annotations

import math

import pytest
import torch

from dataworth.augment import build_policy
from dataworth.data import load_dataset, nested_subset, prepare_dataset
from dataworth.models import build_model
from dataworth.train import seed_streams
from dataworth.train.loop import Member, train_model
from dataworth.train.packed import pack_modules, train_packed, unpack_state

CFG = {"steps": 40, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
       "warmup_steps": 5, "label_smoothing": 0.1, "log_every": 10}


@pytest.mark.parametrize(
    "name, shape", [("mlp", (1, 32)), ("cnn1d", (1, 32)), ("cnn2d", (1, 8, 8)), ("resnet18", (3, 8, 8))]
)
def test_packed_model_computes_each_member_exactly(name, shape):
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model(name, 4, shape, num_classes=5).eval())
    packed = pack_modules(models).eval()
    xs = [torch.randn(6, *shape) for _ in models]
    out = packed(torch.cat(xs, dim=1)).view(6, 3, 5)
    for i, (model, x) in enumerate(zip(models, xs)):
        torch.testing.assert_close(out[:, i], model(x), rtol=1e-4, atol=1e-5)
        restored = build_model(name, 4, shape, num_classes=5)
        restored.load_state_dict(unpack_state(packed, restored, 3, i))
        for key, value in model.state_dict().items():
            assert torch.equal(restored.state_dict()[key], value), key


def member(data, n, seed, ops):
    streams = seed_streams(seed)
    subset = torch.as_tensor(nested_subset(data.y["train"].numpy(), n, seed))
    return Member(
        x=data.x["train"][subset], y=data.y["train"][subset], policy=build_policy(ops),
        batch_gen=torch.Generator().manual_seed(streams["batches"]),
        augment_gen=torch.Generator().manual_seed(streams["augment"]),
    )


def fresh_model(seed, data):
    torch.manual_seed(seed_streams(seed)["init"])
    return build_model("cnn1d", 8, data.sample_shape, data.num_classes)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.pt"
    prepare_dataset({"name": "synthetic", "train_pool": 128, "test_size": 64}, path)
    return load_dataset(path)


SPECS = [(64, 0, []), (32, 1, [{"op": "shift", "max_shift": 3}]), (128, 2, [{"op": "noise", "std": 0.3}])]


def test_packed_training_equals_separate_training(data):
    separate = []
    for n, seed, ops in SPECS:
        model = fresh_model(seed, data)
        m = member(data, n, seed, ops)
        result = train_model(model, m.x, m.y, m.policy, CFG, m.batch_gen, m.augment_gen)
        separate.append((model, result))

    models = [fresh_model(seed, data) for _, seed, _ in SPECS]
    results = train_packed(models, [member(data, n, seed, ops) for n, seed, ops in SPECS], CFG)
    for (alone, alone_result), model, result in zip(separate, models, results):
        assert result.status == "ok" and result.steps_completed == 40
        assert [h["step"] for h in result.history] == [h["step"] for h in alone_result.history]
        torch.testing.assert_close(
            torch.tensor([h["loss"] for h in result.history]),
            torch.tensor([h["loss"] for h in alone_result.history]), rtol=1e-4, atol=1e-5,
        )
        for key, value in alone.state_dict().items():
            torch.testing.assert_close(model.state_dict()[key].float(), value.float(), rtol=1e-3, atol=1e-4)


def test_a_diverging_member_does_not_take_the_others_down(data):
    # Poisoning one member's data with inf makes only that member's loss NaN.
    poisoned = member(data, 64, 0, [])
    poisoned.x = poisoned.x.clone()
    poisoned.x[:, :, 0] = math.inf
    models = [fresh_model(s, data) for s in (0, 1)]
    results = train_packed(models, [poisoned, member(data, 64, 1, [])], CFG)
    assert results[0].status == "diverged" and results[0].steps_completed == 10
    assert results[1].status == "ok" and results[1].steps_completed == 40
    assert math.isfinite(results[1].final_loss)
    assert all(torch.isfinite(v).all() for v in models[1].state_dict().values())


def test_bench_runs_every_section_and_writes_its_table(tmp_path):
    from dataworth.bench import run_benchmarks
    from dataworth.tracking.schemas import BENCH, read_parquet

    table = run_benchmarks(tmp_path / "bench.parquet", device="cpu", quick=True, study=None, workers=0)
    written = read_parquet(tmp_path / "bench.parquet", BENCH)
    assert len(written) == len(table)
    assert set(written["section"]) == {"trainer", "augment", "packing", "data"}  # study: left out here
    baselines = written["variant"].str.contains(
        "baseline|per-sample|per-image Pillow|one after another|original PNG|stored float32")
    assert written.loc[~baselines, "speedup"].gt(0).all() and written.loc[baselines, "speedup"].isna().all()


def test_a_pack_of_one_unpacks_to_the_same_model():
    torch.manual_seed(0)
    model = build_model("cnn1d", 4, (1, 32), num_classes=5)
    packed = pack_modules([model])
    restored = build_model("cnn1d", 4, (1, 32), num_classes=5)
    restored.load_state_dict(unpack_state(packed, restored, 1, 0))
    assert all(torch.equal(restored.state_dict()[k], v) for k, v in model.state_dict().items())


def test_an_interrupted_pack_resumes_from_its_checkpoint_to_identical_results(data, tmp_path):
    from test_checkpoint import StopAfterPolls

    from dataworth.train.checkpoint import Checkpointer, Preempted

    def pack():
        return [fresh_model(seed, data) for _, seed, _ in SPECS], [member(data, n, seed, ops) for n, seed, ops in SPECS]

    models, members = pack()
    uninterrupted = train_packed(models, members, CFG)

    stopping = Checkpointer(tmp_path / "checkpoint.pt", "pack:a,b,c", 0, StopAfterPolls(17))
    with pytest.raises(Preempted, match="preempted at step 18"):
        train_packed(*pack(), CFG, stopping)
    resumed_models, members = pack()  # a new process: fresh models and streams, state from the file
    resumed = train_packed(resumed_models, members, CFG, Checkpointer(tmp_path / "checkpoint.pt", "pack:a,b,c", 0))
    for alone, again, model, model_again in zip(uninterrupted, resumed, models, resumed_models):
        assert again.resumed_from_step == 18 and again.history == [
            dict(row, elapsed_seconds=again_row["elapsed_seconds"]) for row, again_row in zip(alone.history, again.history)
        ]
        for key, value in model.state_dict().items():
            assert torch.equal(model_again.state_dict()[key], value), key


def test_the_train_command_trains_a_pack_together_with_each_run_in_its_own_files(tmp_path, tiny_study):
    """`pack_training: concurrent` on CPU: one grouped model for the pack; each run's files and
    numbers are those of the same run trained alone, within floating-point tolerance."""
    import json
    import subprocess

    from conftest import BIN

    from dataworth.runs import RunDir
    from dataworth.study import load_study
    from dataworth.tracking.schemas import HISTORY, TRAINING, read_parquet
    from dataworth.train import train_run

    tiny_study["resources"] = {"pack_training": "concurrent", "runs_per_job": 4}
    study = load_study(tiny_study)
    path = tmp_path / "d.pt"
    prepare_dataset(study.dataset_config(), path)
    (tmp_path / "study.json").write_text(json.dumps(tiny_study))
    runs = study.runs[:3]
    command = [str(BIN / "dataworth"), "train", "--study", str(tmp_path / "study.json"), "--data", str(path),
               "--runs", str(tmp_path / "runs")]
    proc = subprocess.run(command + [arg for run in runs for arg in ("--run-id", run["run_id"])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "training 3 runs together as one grouped model" in proc.stdout
    for run in runs:
        together = RunDir(tmp_path / "runs" / run["run_id"])
        alone = RunDir(tmp_path / "alone" / run["run_id"])
        train_run(run, path, alone)
        assert "trained together with 2 other runs" in (together.path / "logs" / "train.log").read_text()
        record = read_parquet(together.training, TRAINING).iloc[0]
        assert record["status"] == "ok" and record["steps_completed"] == 40
        h_together, h_alone = (read_parquet(rd.history, HISTORY) for rd in (together, alone))
        torch.testing.assert_close(torch.tensor(h_together["loss"].values), torch.tensor(h_alone["loss"].values),
                                   rtol=1e-4, atol=1e-5)
        weights, reference = (torch.load(rd.model, weights_only=True) for rd in (together, alone))
        assert weights.keys() == reference.keys()
        for key in reference:
            torch.testing.assert_close(weights[key].float(), reference[key].float(), rtol=1e-3, atol=1e-4)
        assert not together.checkpoint.exists()
    # Run again: every run is trained, nothing is done.
    again = subprocess.run(command + ["--run-id", runs[0]["run_id"]], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already done, skipped" in again.stdout


def test_a_failed_grouped_pack_drops_its_checkpoint_and_keeps_each_runs_own(tiny_study, tmp_path, monkeypatch):
    """Falling back to one-by-one training (after out of memory, say) must not cost a run the
    progress of its own checkpoint: the pack checkpoints in a file of its own."""
    import time

    import dataworth.train.run
    from dataworth.runs import RunDir, StudyDir
    from dataworth.study import load_study
    from dataworth.train.jobs import train_together

    runs = load_study(tiny_study).runs[:2]
    first = RunDir(tmp_path / "runs" / runs[0]["run_id"])
    first.path.mkdir(parents=True)
    first.checkpoint.write_bytes(b"this run's own progress")

    def out_of_memory(runs, data, outs, **kwargs):
        outs[0].pack_checkpoint.write_bytes(b"the pack's progress")
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(dataworth.train.run, "train_runs_together", out_of_memory)
    assert train_together(runs, "unused.pt", StudyDir(tmp_path), "concurrent", 1, time.perf_counter(), stop=None)
    assert first.checkpoint.read_bytes() == b"this run's own progress"
    assert not first.pack_checkpoint.exists()


def test_layers_that_would_mix_runs_are_refused():
    from torch import nn

    from dataworth.train.packed import check_packed

    def softmaxed():
        return nn.Sequential(nn.Conv1d(1, 4, 3), nn.Softmax(dim=1))

    with pytest.raises(ValueError, match="cannot pack Softmax: not known to keep runs' channels apart"):
        pack_modules([softmaxed(), softmaxed()])

    class Centred(nn.Module):
        """A container whose own forward subtracts the mean over all channels: it mixes runs."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 4, 3)

        def forward(self, x):
            x = self.conv(x)
            return x - x.mean(dim=1, keepdim=True)

    torch.manual_seed(0)
    models = [Centred(), Centred()]
    xs = [torch.randn(4, 1, 16) for _ in models]
    with pytest.raises(ValueError, match="does not compute run 0 as its own model does .* mix the runs' channels"):
        check_packed(pack_modules(models), models, xs)
    fine = [build_model("cnn1d", 4, (1, 32), num_classes=5) for _ in range(2)]
    check_packed(pack_modules(fine), fine, [torch.randn(4, 1, 32) for _ in fine])  # no error
