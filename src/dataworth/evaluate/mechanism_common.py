"""What the mechanism stages (invariance, gradient_stats, flatness, local_complexity; issue 19 part
B) start from: a finished run's network as it was trained (no uint8 wrapper: these stages feed
the network input themselves, augmented or perturbed), its data and its training subset.

The stages measure *why* augmentations are worth data (Geiping et al. 2022, section 5;
Humayun, Balestriero and Baraniuk 2024). Each writes its own Parquet in the run directory and
reads only model.pt, so switching one on never retrains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dataworth.evaluate.draws import MECHANISM_SEED, fixed_points, generator  # noqa: F401  (the stages' draws)


@dataclass
class Finished:
    """A finished run, loaded for a mechanism stage."""

    run: dict
    data: object  # dataworth.data.Dataset
    network: nn.Module  # in eval mode; takes the network input (normalised floats)
    device: torch.device

    def training_subset(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The run's nested training subset, as stored (uint8 for pixel datasets) and its labels."""
        from dataworth.data import nested_subset

        y = self.data.y["train"]
        subset = torch.as_tensor(nested_subset(y.cpu().numpy(), self.run["n_train"], self.run["seed"]), device=self.device)
        return self.data.x["train"][subset], y[subset]

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """Stored samples -> what the network takes (float, normalised like training)."""
        return self.data.eval_input(x)

    def augmenter(self, ops: list[dict]):
        """`(stored batch, generator) -> augmented network input` for a policy's resolved ops."""
        from dataworth.augment import build_policy

        return self.data.training_policy(build_policy(ops))


def load_finished(run_dir, data_path: str | Path, threads: int) -> tuple[dict, Finished | None]:
    """The run's config, and the loaded run if it finished ok (else None: the stage writes nulls)."""
    from dataworth.data import load_dataset
    from dataworth.evaluate.features import load_network
    from dataworth.tracking.schemas import TRAINING, read_parquet
    from dataworth.train.run import resolve_device

    torch.set_num_threads(threads)
    run = run_dir.read_config()
    if read_parquet(run_dir.training, TRAINING)["status"].iloc[0] != "ok":
        return run, None
    device = resolve_device(run["train"]["device"])
    data = load_dataset(data_path, device)
    network = load_network(run, data.sample_shape, data.num_classes, run_dir.model, device)
    return run, Finished(run, data, network, device)


def study_policies(run_dir) -> dict[str, list[dict]]:
    """The study's policies (name -> resolved ops) from results/<study>/study.json, which the
    workflow writes before any job; a run alone (no study.json) has only its own policy."""
    from dataworth.runs import StudyDir

    run = run_dir.read_config()
    own = {run["augmentation"]["name"]: run["augmentation"]["ops"]}
    study_json = StudyDir(run_dir.path.parent.parent).study_json
    if not study_json.exists():
        return own
    written = json.loads(study_json.read_text())["augmentations"]
    policies = {name: (policy["ops"] if isinstance(policy, dict) else policy) for name, policy in written.items()}
    return {**policies, **own}
