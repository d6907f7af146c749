"""The base of every augmentation op: a validated spec (the study YAML names it by `op`) that
applies to a whole batch on the batch's device, every random parameter drawn per sample from the
caller's `torch.Generator`. Its own module so that the op modules (ops, image_ops, policies)
import it without importing each other.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_serializer

SIGNAL = "signal1d"
IMAGE = "image"


class OpSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    modalities: ClassVar[tuple[str, ...]]
    # True for ops on 0..255 pixel values (colour, histogram, the automatic policies): they apply
    # only to datasets that store pixels, augmented before normalisation (study._cross_check).
    needs_pixels: ClassVar[bool] = False
    # Fields added to an op after studies ran with it: left out of the dump (a run id's input) while
    # at their default, so that adding them changed no existing run id.
    omitted_at_default: ClassVar[tuple[str, ...]] = ()
    # True: the p draw comes first and only the chosen images are transformed (issue 17's ops).
    draw_p_first: ClassVar[bool] = False
    # True for ops that only move pixels (flips, crops): they give `pixel_map` instead of
    # `transform`, and a policy applies a run of them as one gather (warp.remap_chain).
    moves_pixels_only: ClassVar[bool] = False
    # True for pixel-moving ops that can read outside the image (a crop padded with zeros).
    may_fill: ClassVar[bool] = False
    p: float = Field(default=1.0, ge=0, le=1, description="probability that a sample gets this op")

    @model_serializer(mode="wrap")
    def _omit_new_fields_at_default(self, handler):
        data = handler(self)
        for name in self.omitted_at_default:
            if getattr(self, name) == type(self).model_fields[name].default:
                data.pop(name, None)
        return data

    def transform(self, x, gen):
        """The op applied to every sample of the batch (before the per-sample `p` choice)."""
        raise NotImplementedError

    def size_problem(self, height: int, width: int) -> str | None:
        """Why the op cannot apply to images of this size, as "<field>: <why>; allowed: ..." (checked
        by `dataworth validate` where the dataset's image size is known, and when applied)."""
        return None

    def pixel_map(self, n: int, gen, device, height: int, width: int):
        """For `moves_pixels_only` ops: per image, the input row of each output row (N, H) and the
        input column of each output column (N, W), -1 for the fill; `p` drawn here as well."""
        raise NotImplementedError

    def __call__(self, x, gen):
        import torch

        if self.moves_pixels_only:
            from dataworth.augment.warp import remap_chain

            return remap_chain(x, [self], gen)
        if x.shape[0] == 0:  # nothing to draw for (p may have chosen no image of a subset)
            return x
        if self.draw_p_first and self.p < 1.0:
            # Choose the images first and transform only those (new ops: their draws are free to
            # differ in order from the older ops', whose results must stay as they were).
            from dataworth.augment.pixels import apply_where

            chosen = torch.rand(x.shape[0], generator=gen, device=x.device) < self.p
            return apply_where(x, chosen, lambda images, index: self.transform(images, gen))
        out = self.transform(x, gen)
        if self.p >= 1.0:
            return out
        keep = torch.rand(x.shape[0], generator=gen, device=x.device) >= self.p
        if x.device.type != "cpu":
            return torch.where(keep.view(-1, *([1] * (x.dim() - 1))), x, out)
        # On a CPU the kept images are copied back by index: the same result as torch.where, which
        # is several times slower there (a bool condition broadcast over every value).
        kept = keep.nonzero().view(-1)
        return out.clone().index_copy_(0, kept, x.index_select(0, kept))
