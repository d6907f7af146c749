"""What every dataset spec is (its own module, so that datasets.py and pixel_datasets.py both
build on it and datasets.py can register both without an import cycle)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

SIGNAL = "signal1d"
IMAGE = "image"


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    modality: ClassVar[str]
    ood_description: ClassVar[str]
    # False: arrays are standardised float32; True: uint8 pixels (N, C, H, W), normalised on the device.
    stores_pixels: ClassVar[bool] = False

    def identity(self) -> dict:
        """What of the dataset goes into run ids (and names the study's prepared-data file)."""
        return self.model_dump()

    def train_pool_size(self) -> int:
        raise NotImplementedError

    def build(self) -> dict[str, np.ndarray]:
        """Returns x_train, y_train, x_test, y_test, x_ood, y_ood."""
        raise NotImplementedError
