"""`dataworth augment-preview`: see what an image policy does before spending GPU hours on it.

Writes one PNG per policy: a row per training image; columns: the image, a few draws of the
whole policy, then each of its ops alone (forced to p = 1, so the op is visible). Draws come from
a fixed seed, so the grid is the same every time. Registered on the CLI by `register`.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _to_display(x, stores_pixels: bool):
    """(N, C, H, W) -> uint8 (N, H, W, C): pixels as they are; standardised data stretched per image."""
    import torch

    if stores_pixels:
        return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    scaled = (x - lo) / (hi - lo).clamp(min=1e-8) * 255
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def preview_grid(x, ops: list, stores_pixels: bool, draws: int = 4, seed: int = 0, cell: int = 72, gap: int = 2,
                 views: list[list] | None = None):
    """The grid as a PIL image. `ops` are validated OpSpecs; x is (N, C, H, W) float, as training sees it.
    `views` (a policy per view of a self-supervised method) replaces `ops`: columns per view."""
    import torch
    from PIL import Image, ImageDraw

    from dataworth.augment import Policy

    columns = [("image", x)]
    views = views if views is not None else [ops]
    for v, view_ops in enumerate(views):
        label = f"view {v + 1} " if len(views) > 1 else "policy "
        policy = Policy(view_ops)
        for d in range(draws):
            columns.append((f"{label}#{d + 1}", policy(x, torch.Generator(device=x.device).manual_seed(seed + d))))
    for v, view_ops in enumerate(views):
        if len(view_ops) > 1 or (view_ops and view_ops[0].p < 1):
            for op in view_ops:
                forced = op.model_copy(update={"p": 1.0})
                label = f"v{v + 1} {op.op}" if len(views) > 1 else f"{op.op} (p=1)"
                columns.append((label, Policy([forced])(x, torch.Generator(device=x.device).manual_seed(seed))))
    label_height, step, n = 14, cell + gap, x.shape[0]
    grid = Image.new("RGB", (step * len(columns), label_height + step * n), "white")
    draw = ImageDraw.Draw(grid)
    for c, (label, batch) in enumerate(columns):
        draw.text((c * step + 1, 1), label[: step // 6], fill="black")
        for r, pixels in enumerate(_to_display(batch, stores_pixels)):
            img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
            grid.paste(img.convert("RGB").resize((cell, cell), Image.NEAREST), (c * step, label_height + r * step))
    return grid


def training_images(spec, images: int):
    """The first `images` training images of the study's dataset, (N, C, H, W) float, as the policy
    sees them (0..255 pixels for datasets read from files). Raises DataFileError for missing files."""
    import torch

    from dataworth.data.datasets import DATASET_SPECS

    ds = spec.dataset
    arrays = DATASET_SPECS[ds.name].model_validate(ds.model_dump()).build()
    return torch.from_numpy(arrays["x_train"][:images]).float()


def write_policy_grids(spec, out_dir, names: list[str], images: int = 8, draws: int = 4, seed: int = 0,
                       prefix: str = "") -> list[Path]:
    """One PNG per policy in `names` (`<out_dir>/<prefix><policy>.png`), written atomically; returns the paths."""
    from dataworth.files import atomic_path
    from dataworth.study import policy_views

    x = training_images(spec, images)
    stores_pixels = bool(getattr(spec.dataset, "stores_pixels", False))
    paths = []
    for name in names:
        views = policy_views(spec.augmentations[name])  # one list, or one per view of an SSL method
        grid = preview_grid(x, views[0], stores_pixels, draws=draws, seed=seed, views=views)
        path = Path(out_dir) / f"{prefix}{name}.png"
        with atomic_path(path) as tmp:
            grid.save(tmp, format="PNG")
        paths.append(path)
    return paths


def cmd_augment_preview(args) -> None:
    from dataworth.augment.ops import IMAGE
    from dataworth.jobs import load_study_or_exit
    from dataworth.study import policy_ops

    study = load_study_or_exit(args.study)
    spec = study.spec
    ds = spec.dataset
    if ds.modality != IMAGE:
        sys.exit(f"augment-preview: {ds.name} holds {ds.modality} data; previews show image policies only")
    names = args.policy or list(spec.augmentations)
    unknown = [p for p in names if p not in spec.augmentations]
    if unknown:
        sys.exit(f"--policy: unknown policy {unknown[0]!r}; allowed: {', '.join(spec.augmentations)}")
    out_dir = Path(args.out) if args.out else study.study_dir(args.results).path / "augment-preview"
    paths = write_policy_grids(spec, out_dir, names, images=args.images, draws=args.draws, seed=args.seed)
    for name, path in zip(names, paths):
        print(f"policy {name}: {len(policy_ops(spec.augmentations[name]))} op(s) on {args.images} images -> {path}")


def register(subparsers) -> None:
    p = subparsers.add_parser("augment-preview", help="PNG grids of training images under each augmentation policy")
    p.add_argument("study", nargs="?", default="params.yaml")
    p.add_argument("--policy", action="append", help="a policy of the study (repeat for several; default: all)")
    p.add_argument("--out", help="folder for the PNGs (default: results/<study>/augment-preview)")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--images", type=int, default=8, help="training images, one per row")
    p.add_argument("--draws", type=int, default=4, help="draws of the whole policy, one per column")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_augment_preview)
