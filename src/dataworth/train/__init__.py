"""Training: the loop (`loop`), its schedule, and `train_run`, which trains one run of a study."""

from dataworth.train.run import resolve_device, seed_streams, train_run

__all__ = ["resolve_device", "seed_streams", "train_run"]
