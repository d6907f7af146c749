"""A study: its typed spec, validation with field-path errors, the grid, and run ids.

A study is one YAML file (params.yaml by default). `load_study` validates it completely
before anything runs and raises `StudyError` listing every problem as
``<field path>: <what is wrong>; <what is allowed>``.

The grid expands into runs. A run's id is a short hash of its resolved config (everything
that changes its result), so adding a seed or a size adds runs and leaves every existing id,
and so every finished run directory, untouched.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PlainValidator, Tag, ValidationError, field_validator,
                      model_validator)

from dataworth.augment import MAX_REPETITION_BYTES
from dataworth.augment.ops import OP_SPECS, OpSpec
from dataworth.data.datasets import DATASET_SPECS, DatasetSpec
from dataworth.methods import METHODS
from dataworth.models import MODEL_MODALITIES, MODEL_OPTIONS, estimated_parameters, input_problem
from dataworth.runs import STAGES, StudyDir
from dataworth.setting_axes import combinations as setting_combinations  # issue 19 C: grid.settings
from dataworth.setting_axes import problems as setting_problems
from dataworth.setting_axes import resolved as resolved_settings

RUN_ID_LENGTH = 12
# Settings that decide where or how fast a run executes, not what it computes: left out of the
# run id so a study moved from a laptop to a cluster keeps its run ids. (The `eval` section is
# left out too: a run's id names what was trained.)
EXECUTION_ONLY_TRAIN_FIELDS = ("device", "checkpoint_every_seconds", "compile",
                               "log_local_complexity_every",  # issue 19: a measurement, not the training
                               "eval_every", "eval_samples")  # issue 20: held-out curves are watched, not computed
# Train settings a self-supervised run does not use (it has no labels): left out of its id.
SUPERVISED_ONLY_TRAIN_FIELDS = ("label_smoothing",)
# What grid.settings (setting_axes.py) needs to know of the two above.
SETTING_ID_RULES = (EXECUTION_ONLY_TRAIN_FIELDS, SUPERVISED_ONLY_TRAIN_FIELDS)

Method = Literal[tuple(METHODS)]

# Names that become folder names (results/<study>/) or table cells (policy names): letters, digits
# and _.- only, so no name escapes its folder, needs quoting in a shell, or breaks a Markdown row.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# A file name may have 255 bytes (NAME_MAX of ext4, xfs, btrfs, NFS); the atomic writes' temporary
# names add up to 22 (".<name>.XXXXXXXX.tmp.old"), and 200 leaves room for the rest.
NAME_MAX_LENGTH = 200
# The largest model a study may ask for: 1e9 parameters are 4 GB of float32 weights, about 16 GB
# with gradients and two optimizer moments (AdamW), the memory of a large GPU. Widths are bounded
# by models.estimated_parameters, a lower bound of each model's parameter count.
MAX_MODEL_PARAMETERS = 1_000_000_000
# Generated datasets (mnist1d, synthetic) are built in memory and held on the device as float32:
# train pool + test set + OOD set of this many values at most (4 GiB).
MAX_GENERATED_DATASET_BYTES = 4 * 2**30
# Values per sample of generated datasets whose length is not a setting.
_FIXED_SAMPLE_VALUES = {"mnist1d": 40}
# sbatch options in resources.slurm.extra, and the strings that reach the sbatch command line
# (partition, account, qos): the SLURM executor plugin runs that line through a shell, so only
# characters that no shell treats specially may pass.
_SLURM_OPTION = re.compile(r"^--?[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9_.,:@%+/=-]+)?$")
_SLURM_VALUE = re.compile(r"^[A-Za-z0-9_.,:@%+/=-]+$")
# sbatch options that change what runs or in which environment, not what it gets.
_SBATCH_OPTIONS_REFUSED = {
    "--wrap": "it replaces the job's command",
    "--export": "it changes the job's environment (the workflow sets it)",
    "--export-file": "it changes the job's environment (the workflow sets it)",
    "--chdir": "jobs run in the repository root", "-D": "jobs run in the repository root",
    "--uid": "jobs run as you", "--gid": "jobs run as you", "--get-user-env": "it changes the job's environment",
}


class StudyError(ValueError):
    """A study that cannot run; the message lists every problem with its field path."""

    def __init__(self, problems: list[str], source: str = "study"):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


class _Strict(BaseModel):
    # extra="forbid" turns a typo in a key into an error instead of a silently ignored value.
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value, info):
        # YAML's true/false would otherwise pass as 1/0 (`steps: true` training one step).
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and annotation in (int, float):
            kind = "an integer" if annotation is int else "a number"
            raise ValueError(f"must be {kind}, not {str(value).lower()}")
        return value


class ModelSpec(_Strict):
    name: Literal[tuple(MODEL_MODALITIES)] = Field(
        description="architecture: mlp (any data), cnn1d (1D signals), cnn2d or resnet18 (CIFAR variant; images); "
        "the paper's flip_invariant_resnet18, orbit_resnet18, e2_resnet18, e2_wrn22, vgg13, pyramidnet110, convmixer, swin; "
        "the MNIST-1D benchmark's linear (logistic regression; width 1), mnist1d_mlp, mnist1d_cnn and mnist1d_gru (1D)"
    )
    width: int = Field(gt=0, description="hidden units (mlp), base channels (cnn1d, cnn2d, resnet18 ...), alpha "
                       "(pyramidnet110), dim (convmixer), embed_dim (swin), widen factor (e2_wrn22); mnist1d_*: hidden units or "
                       "channels; linear: 1")
    # --- issue 18: model options; unset ones stay out of the run id (models.MODEL_OPTIONS) ---
    downsample: Optional[Literal["B", "C"]] = Field(
        default=None, description="resnet18 family: shortcut of a downsampling block, B (strided 1x1 conv, "
        "default) or C (2x2 average pool, then 1x1 conv; the paper's)")
    init: Optional[Literal["torch", "paper"]] = Field(
        default=None, description="resnet18 family: torch (PyTorch's default) or paper (Kaiming fan_out, last "
        "BatchNorm of each residual branch zero)")
    group: Optional[Literal["d2", "d4"]] = Field(
        default=None, description="e2_resnet18, e2_wrn22: symmetry group, d2 (180-degree rotations and mirrors; the "
        "paper's, default) or d4 (90-degree rotations and mirrors)")

    @model_validator(mode="after")
    def _options_fit_model(self) -> "ModelSpec":
        takes = MODEL_OPTIONS.get(self.name, {})
        for option in ("downsample", "init", "group"):
            if getattr(self, option) is not None and option not in takes:
                users = sorted(m for m, opts in MODEL_OPTIONS.items() if option in opts)
                raise ValueError(f"{option} is an option of {', '.join(users)}, not of {self.name}; "
                                 f"allowed for {self.name}: {', '.join(takes) or 'no options'}")
        return self
    # ---

    @model_validator(mode="after")
    def _fits_in_memory(self) -> "ModelSpec":
        if self.name == "linear" and self.width != 1:  # issue 18: two widths of one model would be the same runs
            raise ValueError(f"width {self.width}: linear has no hidden layer; allowed: 1")
        if estimated_parameters(self.name, self.width) > MAX_MODEL_PARAMETERS:
            largest = math.isqrt(MAX_MODEL_PARAMETERS // estimated_parameters(self.name, 1))
            raise ValueError(
                f"width {self.width} gives {self.name} at least {estimated_parameters(self.name, self.width):.2e} "
                f"parameters, more than the {MAX_MODEL_PARAMETERS:.0e} (4 GB of weights, ~16 GB to train) "
                f"a job can hold; allowed: width 1..{largest}"
            )
        return self

    def identity(self) -> dict:
        """The run id's model section: name, width and only the options set (ids of studies that set
        none stay what they were)."""
        return self.model_dump(exclude_none=True)


class TrainSpec(_Strict):
    steps: int = Field(gt=0, description="optimizer steps, whatever the training-set size")
    batch_size: int = Field(default=128, gt=0, description="training batch size")
    optimizer: Literal["sgd", "adamw"] = Field(default="sgd", description="sgd (Nesterov momentum) or adamw")
    lr: float = Field(default=0.05, gt=0, description="peak learning rate")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="Nesterov momentum (sgd only)")
    weight_decay: float = Field(default=5e-4, ge=0, description="applied to all parameters")
    warmup_steps: int = Field(default=0, ge=0, description="linear warm-up, then cosine decay to zero")
    label_smoothing: float = Field(default=0.0, ge=0, lt=1, description="label smoothing of the supervised loss")
    log_every: int = Field(default=50, gt=0, description="history row (and divergence check) every N steps")
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    checkpoint_every_seconds: float = Field(
        default=300, ge=0, description="checkpoint period for resuming after preemption; 0 = only on a stop signal"
    )
    compile: bool = Field(
        default=False,
        description="torch.compile the network for training: faster steps on a GPU after a compile of tens of "
        "seconds per process; results equal within floating-point tolerance",
    )

    # issue 19: evaluate/local_complexity.py's history (execution-only: not in run ids)
    log_local_complexity_every: int = Field(
        default=0, ge=0, description="add local complexity (eval.local_complexity settings) to history.parquet every "
        "N steps, a multiple of log_every; 0 = never. Runs trained together (a pack on a GPU) do not log it",
    )

    # --- issue 20 item 1: held-out learning curves (train/heldout.py); execution-only, not in run ids
    eval_every: int = Field(
        default=0, ge=0,
        description="test and OOD loss and accuracy every N steps into history.parquet (held-out curves; "
        "supervised runs); 0 = off; a multiple of log_every",
    )
    eval_samples: int = Field(
        default=2048, gt=0,
        description="held-out curves: at most this many samples of each set (a fixed random subset)",
    )

    @model_validator(mode="after")
    def _eval_every_on_log_rows(self) -> "TrainSpec":
        if self.eval_every % self.log_every:
            raise ValueError(f"eval_every ({self.eval_every}) must be a multiple of log_every ({self.log_every}); "
                             f"allowed: 0 (off), {self.log_every}, {2 * self.log_every}, ...")
        return self
    # ---

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError("must be one of auto, cpu, cuda, cuda:N")

    @model_validator(mode="after")
    def _warmup_fits(self) -> "TrainSpec":
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be smaller than steps ({self.steps})")
        if self.log_local_complexity_every % self.log_every:
            raise ValueError(f"log_local_complexity_every ({self.log_local_complexity_every}) must be a multiple of "
                             f"log_every ({self.log_every}): it is measured on history rows; allowed: 0, "
                             f"{self.log_every}, {2 * self.log_every}, ...")
        return self


def _full_or_size(value: Any) -> str | int:
    # One check with one message (a plain Union would report a confusing error per member).
    if value == "full" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError("must be full (the whole training pool) or a whole number of samples > 0")


FullOrSize = Annotated[Union[Literal["full"], int], PlainValidator(_full_or_size)]


class ProbeSpec(_Strict):
    """The linear probe: a linear classifier trained on frozen, standardised encoder features."""

    steps: int = Field(default=500, gt=0, description="AdamW steps of the probe")
    batch_size: int = Field(default=256, gt=0, description="probe training batch size")
    lr: float = Field(default=0.01, gt=0, description="peak learning rate (cosine decay to zero)")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay of the probe")


class KnnSpec(_Strict):
    k: int = Field(default=20, gt=0, description="neighbours (cosine similarity of encoder features) that vote")


class RankmeSpec(_Strict):
    samples: FullOrSize = Field(
        default="full", description="training-pool samples embedded: full, or a fixed random subset of this size"
    )


# --- issue 19 part B: the mechanism stages (evaluate/invariance.py, gradient_stats.py, flatness.py,
# local_complexity.py). Each is a stage of its own, off unless `enabled`; eval settings, so not in
# run ids: switching one on evaluates the trained runs, never retrains.
class InvarianceSpec(_Strict):
    enabled: bool = Field(default=False, description="run the invariance stage (every run)")
    samples: int = Field(default=1000, gt=0, description="fixed test images (all of the test set if fewer)")
    views: int = Field(default=4, gt=0, description="augmented views per image, per policy and per op")


class GradientStatsSpec(_Strict):
    enabled: bool = Field(default=False, description="run the gradient_stats stage (runs with a classifier head)")
    batches: int = Field(default=16, ge=2, description="batch gradients on the run's augmented training distribution")
    image_samples: int = Field(default=32, ge=2, description="augmented samples whose per-sample gradients are "
                               "compared pairwise (memory: samples x parameters floats)")
    filter_normalize: bool = Field(default=False, description="scale each gradient tensor to its parameter's norm "
                                   "first, as the paper's normalize_in_SNR_computations")


class FlatnessSpec(_Strict):
    enabled: bool = Field(default=False, description="run the flatness stage (runs with a classifier head)")
    samples: FullOrSize = Field(default=1000, description="the run's first training samples the loss is taken on")
    directions: int = Field(default=4, gt=0, description="random filter-normalised directions walked")
    step_size: float = Field(default=0.1, gt=0, description="step along a direction (the paper: 0.1)")
    threshold: float = Field(default=1.0, gt=0, description="rise of the loss that ends a walk (the paper: 1.0)")
    max_steps: int = Field(default=100, gt=0, description="steps after which a walk stops (counted as max_steps)")
    hessian_probes: int = Field(default=8, ge=0, description="Rademacher probes of the Hutchinson Hessian trace "
                                "(0: none; 2+ for a standard error)")


class LocalComplexitySpec(_Strict):
    enabled: bool = Field(default=False, description="run the local_complexity stage (every run)")
    radius: float = Field(default=0.1, gt=0, description="radius r of the neighbourhood, in network-input units "
                          "(standardised signals, normalised pixels)")
    directions: int = Field(default=8, gt=0, description="orthonormal directions P (2P vertices; at most the "
                            "input's dimensions)")
    points: int = Field(default=256, gt=0, description="test points and training points each")
# ---


class EvalSpec(_Strict):
    batch_size: int = Field(default=1024, gt=0, description="batch size of every evaluation's forward passes")
    labeled: FullOrSize = Field(
        default="full", description="labeled set of the probe and the k-NN bank: full pool, or a nested subset of n"
    )
    probe_supervised: bool = Field(
        default=False, description="also probe (linear probe, k-NN) supervised runs' encoders, as a baseline"
    )
    probe: ProbeSpec = ProbeSpec()
    knn: KnnSpec = KnnSpec()
    rankme: RankmeSpec = RankmeSpec()
    # --- issue 16 item 4: several test sets per study (evaluate/test_sets.py) ---
    test_sets: dict[str, str] = Field(
        default_factory=dict,
        description="further test sets of the trained head, name -> reference (e.g. cifar10: cifar10:test, "
        "fog3: cifar10c:fog@3, c3: cifar10c:all@3 = the mean over the 19 corruptions); names [a-z0-9_], not "
        "train/test/ood; each gives <name>_accuracy and <name>_loss columns in metrics.parquet",
    )
    # ---
    # --- issue 19 part B ---
    invariance: InvarianceSpec = InvarianceSpec()
    gradient_stats: GradientStatsSpec = GradientStatsSpec()
    flatness: FlatnessSpec = FlatnessSpec()
    local_complexity: LocalComplexitySpec = LocalComplexitySpec()
    # ---


class ProjectorSpec(_Strict):
    hidden: int = Field(default=512, gt=0, description="hidden units (Linear-BatchNorm-ReLU-Linear)")
    out: int = Field(default=128, gt=0, description="output dimension: the embedding the loss sees")


class SimclrSpec(_Strict):
    temperature: float = Field(default=0.5, gt=0, description="NT-Xent temperature")


class VicregSpec(_Strict):
    invariance: float = Field(default=25.0, ge=0, description="weight of the mean squared distance of the views")
    variance: float = Field(default=25.0, ge=0, description="weight of the hinge on each dimension's std (target 1)")
    covariance: float = Field(default=1.0, ge=0, description="weight of the squared off-diagonal covariances")


class ByolSpec(_Strict):
    predictor_hidden: int = Field(default=512, gt=0, description="hidden units of the predictor")
    momentum_base: float = Field(
        default=0.99, ge=0, lt=1, description="EMA momentum of the target at step 0; cosine schedule to 1 at the last"
    )


class SslSpec(_Strict):
    """Settings of the self-supervised methods; a run's id includes the projector and its method's."""

    projector: ProjectorSpec = ProjectorSpec()
    simclr: SimclrSpec = SimclrSpec()
    vicreg: VicregSpec = VicregSpec()
    byol: ByolSpec = ByolSpec()


class TrackingSpec(_Strict):
    """What `dataworth track` sends to MLflow beyond params, metrics and the run's small files."""

    log_models: bool = Field(default=False, description="also upload each run's model.pt (large studies: many GB)")


# sbatch flags that have their own setting: in `extra` they would contradict it.
_SLURM_FLAGS_WITH_A_SETTING = {
    "partition": r"(^|\s)(--partition\b|-p\b)", "account": r"(^|\s)(--account\b|-A\b)",
    "qos": r"(^|\s)--qos\b", "runtime_min": r"(^|\s)(--time\b|-t\b)", "mem_mb": r"(^|\s)--mem\b",
    "cpus": r"(^|\s)(--cpus-per-task\b|-c\b)", "gpus": r"(^|\s)(--gpus\b|--gres\b|-G\b)",
    "signal_seconds": r"(^|\s)--signal\b",
}


class SlurmSpec(_Strict):
    """What each train and evaluate job asks SLURM for (`snakemake --profile slurm`, `dataworth submit`).

    Execution-only: no part of a run id. partition, account, qos and extra can also be set with
    the environment variables DATAWORTH_SLURM_PARTITION, _ACCOUNT, _QOS and _EXTRA, which win.
    """

    gpus: int = Field(default=1, ge=0, description="GPUs per job; 0 for CPU-only jobs")
    cpus: int = Field(default=4, gt=0, description="CPUs per job; training and evaluation use that many threads")
    mem_mb: int = Field(default=16000, gt=0, description="memory per job, MB")
    runtime_min: int = Field(default=60, gt=0, description="time limit per job, minutes")
    signal_seconds: int = Field(
        default=180, ge=0,
        description="SLURM sends SIGTERM this long before the time limit: training checkpoints and requeues "
        "its job (same job id); 0 = no warning",
    )
    partition: str | None = Field(default=None, description="SLURM partition (null: the site's default)")
    account: str | None = Field(default=None, description="SLURM account (null: the user's default)")
    qos: str | None = Field(default=None, description="SLURM quality of service (null: the default)")
    extra: str = Field(default="", description="further sbatch flags, e.g. '--constraint=a100'")

    @field_validator("partition", "account", "qos")
    @classmethod
    def _plain_name(cls, v: str | None) -> str | None:
        if v is not None and not _SLURM_VALUE.match(v):
            raise ValueError("must be a SLURM name: letters, digits and _.,:@%+/=- only (it reaches a shell line)")
        return v

    @field_validator("extra")
    @classmethod
    def _only_sbatch_options(cls, v: str) -> str:
        import shlex

        try:
            tokens = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"not a list of sbatch options ({exc})") from None
        for i, token in enumerate(tokens):
            name = token.split("=", 1)[0]
            if name in _SBATCH_OPTIONS_REFUSED:
                raise ValueError(f"{name} is not allowed here: {_SBATCH_OPTIONS_REFUSED[name]}")
            if not (_SLURM_OPTION.match(token) or (i > 0 and _SLURM_VALUE.match(token) and tokens[i - 1].startswith("-"))):
                raise ValueError(
                    f"{token!r} is not an sbatch option: allowed are --name, --name=value or -X value with "
                    "letters, digits and _.,:@%+/=- only (the line goes through a shell)"
                )
        for setting, pattern in _SLURM_FLAGS_WITH_A_SETTING.items():
            if re.search(pattern, v):
                raise ValueError(f"sets what resources.slurm.{setting} sets; use that setting instead")
        return v

    @model_validator(mode="after")
    def _signal_before_limit(self) -> "SlurmSpec":
        # SLURM may send the signal up to 60 s early: it must still come after the job started.
        if self.signal_seconds and self.signal_seconds + 60 >= self.runtime_min * 60:
            raise ValueError(
                f"signal_seconds ({self.signal_seconds}) must be more than 60 s shorter than the time limit "
                f"(runtime_min {self.runtime_min} = {self.runtime_min * 60} s): SLURM may send it up to 60 s early"
            )
        return self


class ResourcesSpec(_Strict):
    runs_per_job: int = Field(
        default=1, gt=0,
        description="runs one train or evaluation job takes (one process, one SLURM job): small runs stop "
        "paying start-up, scheduling and queueing one by one",
    )
    pack_training: Literal["auto", "concurrent", "sequential"] = Field(
        default="auto",
        description="how a job trains its runs: concurrent (one grouped model, supervised runs), sequential "
        "(one after another, in one process), or auto: concurrent on CUDA, sequential on a CPU",
    )
    slurm: SlurmSpec = SlurmSpec()


AxisValue = Union[int, str, list[Union[int, str]]]


class GridSpec(_Strict):
    method: list[Method] = Field(
        default=["supervised"], min_length=1, description="supervised, or self-supervised pretraining + probes"
    )
    n_train: list[Annotated[int, Field(gt=0)]] = Field(
        min_length=1, description="training-set sizes: real (for SSL methods unlabeled) samples, each <= the pool"
    )
    augmentation: list[str] = Field(min_length=1, description="policies to train with (names under augmentations)")
    model: list[ModelSpec] = Field(min_length=1, description="architectures and widths")
    seed: list[Annotated[int, Field(ge=0)]] = Field(
        min_length=1, description="seeds; a seed fixes subset, init, batch order and augmentation draws"
    )
    exclude: list[dict[Literal["method", "n_train", "augmentation", "model", "width", "seed"], AxisValue]] = Field(
        default_factory=list,
        description="a run is left out when it matches every key of one rule (a list matches any of its values)",
    )
    # --- issue 19 C: axes over settings (setting_axes.py)
    settings: dict[str, list[Union[int, float, str]]] = Field(
        default_factory=dict,
        description="axes over settings of train: and ssl:, by dotted key (train.lr, ssl.simclr.temperature, "
        "ssl.vicreg.covariance, ssl.projector.out, ...): each method's runs are the product of the axes that "
        "apply to it; a run's id changes only where a value differs from its section's",
    )
    # ---


DatasetUnion = Annotated[Union[tuple(DATASET_SPECS.values())], Field(discriminator="name")]
OpUnion = Annotated[Union[tuple(OP_SPECS.values())], Field(discriminator="op")]


# --- issue 17 item 2: fixed repetitions ---
class RepeatedPolicySpec(_Strict):
    """A policy written as a mapping: its ops, and optionally a fixed set of augmented copies."""

    ops: list[OpUnion] = Field(description="the ops, as in a policy written as a list; [] is no augmentation")
    rounds: Optional[Annotated[int, Field(gt=0)]] = Field(
        default=None,
        description="draw this many augmented copies of each training image once (from the run's seed) and "
        "train on that fixed set instead of fresh draws every step (the paper's repetitions); unset: fresh draws",
    )
    first_round_clean: bool = Field(
        default=False, description="with rounds: the first of the rounds is the clean images, the others augmented"
    )


# --- per-view policies of self-supervised methods (BYOL's asymmetric views) ---
VIEW_COUNT = 2  # SimCLR, VICReg and BYOL compare two views of each image


class ViewPoliciesSpec(_Strict):
    """A policy written as `{views: [[ops of view 1], [ops of view 2]]}`: each view of a
    self-supervised method drawn from its own ops (BYOL: blur always on view 1, solarize on view 2)."""

    views: list[list[OpUnion]] = Field(
        description="the ops of view 1 and of view 2 of a self-supervised method, each a list as a policy is "
        "written ([] leaves that view clean)"
    )

    @field_validator("views")
    @classmethod
    def _two_views(cls, views):
        if len(views) != VIEW_COUNT:
            raise ValueError(f"{len(views)} view(s); allowed: exactly {VIEW_COUNT} lists of ops, one per view")
        return views


def _policy_form(value) -> str:
    if isinstance(value, ViewPoliciesSpec) or (isinstance(value, dict) and "views" in value):
        return "views"
    return "mapping" if isinstance(value, (dict, RepeatedPolicySpec)) else "list"


# Tagged by its form, so that an error names the one form that was written, not both.
POLICY_FORMS = {"list": list[OpUnion], "mapping": RepeatedPolicySpec, "views": ViewPoliciesSpec}
PolicyUnion = Annotated[
    Union[tuple(Annotated[tp, Tag(tag)] for tag, tp in POLICY_FORMS.items())], Discriminator(_policy_form)
]


def policy_views(policy) -> list[list]:
    """The ops of each view: one list for a policy that draws every view alike, two for `views`."""
    if isinstance(policy, ViewPoliciesSpec):
        return [list(ops) for ops in policy.views]
    return [list(policy.ops) if isinstance(policy, RepeatedPolicySpec) else list(policy)]


def policy_ops(policy) -> list:
    """A policy's ops, whether it is written as a list of ops or as a mapping (all views' ops for `views`)."""
    return [op for ops in policy_views(policy) for op in ops]


def policy_identity(name: str, policy) -> dict:
    """A run's `augmentation` section. Keys for rounds (or views) only where the policy sets them,
    so the ids of every other policy stay what they were."""
    if isinstance(policy, ViewPoliciesSpec):
        return {"name": name, "views": [[op.model_dump() for op in ops] for ops in policy.views]}
    identity = {"name": name, "ops": [op.model_dump() for op in policy_ops(policy)]}
    if isinstance(policy, RepeatedPolicySpec) and policy.rounds is not None:
        identity.update(rounds=policy.rounds, first_round_clean=policy.first_round_clean)
    return identity
# ---


# --- issue 18 item 4: published values the report compares with (analysis/reference.py) ---
REFERENCE_SETTING_KEYS = ("method", "n_train", "augmentation", "model", "width")


class ReferenceRowSpec(_Strict):
    label: Optional[str] = Field(default=None, description="what the row is, e.g. the paper's name for the model")
    setting: dict[Literal[REFERENCE_SETTING_KEYS], Union[int, str]] = Field(
        description="the runs of the row: grid values (method, n_train, augmentation, model, width) that pick one "
        "setting; its seeds are averaged"
    )
    metric: str = Field(description="a metrics.parquet column: test_accuracy, ood_accuracy, <test set>_accuracy, ...")
    value: float = Field(description="the published value, in the column's units (accuracy as a fraction: 0.94)")
    tolerance: float = Field(ge=0, description="within tolerance when |our mean over seeds - value| <= tolerance")


class ReferenceSpec(_Strict):
    source: str = Field(min_length=1, description="citation of the published values (paper, table or figure)")
    rows: list[ReferenceRowSpec] = Field(min_length=1, description="published values, one per setting and metric")
# ---


class StudySpec(_Strict):
    study: str = Field(
        pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH,
        description=f"name (letters, digits, _.-; at most {NAME_MAX_LENGTH}); outputs go to results/<study>/",
    )
    dataset: DatasetUnion = Field(description="the dataset: its name and settings")
    augmentations: dict[str, PolicyUnion] = Field(
        description="named policies: a list of ops each ([] is no augmentation), or a mapping {ops, rounds, "
        "first_round_clean} for a fixed set of augmented copies, or {views: [[...], [...]]} for one list of ops "
        "per view of a self-supervised method"
    )
    grid: GridSpec
    train: TrainSpec
    eval: EvalSpec = EvalSpec()
    ssl: SslSpec = SslSpec()
    tracking: TrackingSpec = TrackingSpec()
    resources: ResourcesSpec = Field(default=ResourcesSpec(), description="what cluster jobs ask for (execution-only)")
    reference: Optional[ReferenceSpec] = Field(  # issue 18 item 4
        default=None, description="published values the report checks this study's results against, row by row "
        "(docs/analysis.md); not part of run ids"
    )


# ---------------------------------------------------------------------------------------------
# Validation messages


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _tagged_member(tp: Any, tag: Any) -> Any:
    """The member of a discriminated union that has a Literal field equal to `tag` (its tag)."""
    if typing.get_origin(tp) is not Union:
        return None
    for member in typing.get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if (tag,) in (typing.get_args(f.annotation) for f in member.model_fields.values()):
                return member
    return None


def _walk(loc: tuple) -> tuple[str, Any]:
    """Follow a pydantic error location through the spec types.

    Returns the path as the user wrote it (union tags, which pydantic inserts, are dropped)
    and the type found at its end (a model, or None when the location leaves the spec).
    """
    tp: Any = StudySpec
    shown = ""
    for item in loc:
        if item == "[key]":  # pydantic's marker for "the key of this mapping", already shown
            continue
        tp = _strip_annotated(tp)
        if item in POLICY_FORMS and typing.get_origin(tp) is Union:  # the tag of a policy's form: not shown
            tp = POLICY_FORMS[item]
            continue
        member = _tagged_member(tp, item)
        if member is not None:
            tp = member
            continue
        origin = typing.get_origin(tp)
        if origin in (list, tuple) or isinstance(item, int):
            tp = typing.get_args(tp)[0] if origin in (list, tuple) else None
            shown += f"[{item}]"
            continue
        shown += f".{item}" if shown else str(item)
        if origin is dict:
            tp = typing.get_args(tp)[1]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and item in tp.model_fields:
            tp = tp.model_fields[item].annotation
        else:
            tp = None
    return shown or "(top level)", _strip_annotated(tp)


def _format_error(err: dict) -> str:
    loc, kind = _walk(err["loc"])[0], err["type"]
    ctx = err.get("ctx", {})
    if kind == "extra_forbidden":
        _, parent = _walk(err["loc"][:-1])
        hint = ""
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            hint = f"; allowed keys here: {', '.join(parent.model_fields)}"
        elif typing.get_origin(parent) is Literal:
            hint = f"; allowed keys here: {', '.join(map(str, typing.get_args(parent)))}"
        return f"{loc}: unknown key{hint}"
    if kind == "missing":
        return f"{loc}: required key is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "name")).strip("'")
        members = typing.get_args(_walk(err["loc"])[1])
        tags = ", ".join(repr(typing.get_args(m.model_fields[key].annotation)[0]) for m in members)
        if kind == "union_tag_not_found":
            return f"{loc}.{key}: required key is missing; allowed: {tags}"
        return f"{loc}: unknown {key} {ctx.get('tag')!r}; allowed: {tags}"
    if kind in ("int_type", "float_type") and isinstance(err.get("input"), str):
        # Strict numbers: "200" is text, and silently converting it hides a quoting mistake.
        hint = " (YAML reads 1e-3 as text: write 1.0e-3)" if re.fullmatch(r"[-+]?[0-9.]+e[-+]?[0-9]+", err["input"]) else ""
        return f"{loc}: must be a number, not the text {err['input']!r}; write it without quotes{hint}"
    if kind == "string_too_long" and err["loc"] == ("study",):
        return (f"study: {len(err['input'])} characters; allowed: at most {NAME_MAX_LENGTH} (it names the folder "
                "results/<study>/, and a file name may have 255 bytes)")
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg} (got {err.get('input')!r})"


# ---------------------------------------------------------------------------------------------
# The study and its runs


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def short_hash(obj: Any, length: int = RUN_ID_LENGTH) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


class Study:
    """A validated study: the spec plus its expanded, ordered runs."""

    def __init__(self, spec: StudySpec, source: str = "study"):
        self.spec = spec
        self.source = source
        problems = _cross_check(spec)
        self.runs: list[dict] = _expand(spec) if not problems else []
        if not problems and not self.runs:
            problems.append("grid.exclude: every run of the grid is excluded; nothing would run")
        if problems:
            raise StudyError(problems, source)
        self.runs_by_id = {r["run_id"]: r for r in self.runs}

    @property
    def name(self) -> str:
        return self.spec.study

    def study_dir(self, results_root: str | Path = "results") -> StudyDir:
        """Where this study's results live: `<results_root>/<study>/`."""
        return StudyDir.of(self.name, results_root)

    def dataset_config(self) -> dict:
        return self.spec.dataset.model_dump()

    def dataset_id(self) -> str:
        """Names the prepared-data file: changes whenever the dataset config does."""
        # identity(): the config, less the execution-only data root (issue 16; dataset files).
        return f"{self.spec.dataset.name}-{short_hash(self.spec.dataset.identity(), 8)}"

    def run(self, run_id: str) -> dict:
        try:
            return self.runs_by_id[run_id]
        except KeyError:
            raise KeyError(f"run {run_id!r} is not in study {self.name!r} ({len(self.runs)} runs)") from None

    def stages(self, run: dict) -> list[str]:
        """The workflow stages a run goes through (runs.STAGES: train, evaluate, and the evaluations
        of its representation the eval settings ask for), in workflow order."""
        settings = self.spec.eval.model_dump()
        return [name for name, stage in STAGES.items() if stage.applies_to(run, settings)]

    def eval_params(self, stage: str) -> str:
        """The eval settings a stage reads (runs.STAGES), as JSON: its rule's Snakemake params, so
        that changing one reruns just that evaluation, and the text of its pack markers."""
        settings = self.spec.eval.model_dump()
        return json.dumps({key: settings[key] for key in STAGES[stage].eval_settings})

    def write_json(self, path: str | Path) -> bool:
        """Write the validated study as JSON, atomically and only if it changed; True if written."""
        from dataworth.files import write_text_atomic

        path = Path(path)
        text = json.dumps(self.spec.model_dump(mode="json"), indent=2) + "\n"
        if path.exists() and path.read_text() == text:
            return False
        write_text_atomic(path, text)
        return True


RECIPE_FIELDS = ("steps", "batch_size", "optimizer", "lr", "weight_decay", "label_smoothing")


def run_row(run: dict) -> dict:
    """The flat view of one run: grid values and recipe (one row of the run table)."""
    return {
        "run_id": run["run_id"],
        "study": run["study"],
        "dataset": run["dataset"]["name"],
        "method": run["method"],
        "n_train": run["n_train"],
        "augmentation": run["augmentation"]["name"],
        "model": run["model"]["name"],
        "width": run["model"]["width"],
        "seed": run["seed"],
        **{key: run["train"][key] for key in RECIPE_FIELDS},
    }


def _matches(rule: dict, values: dict) -> bool:
    for key, wanted in rule.items():
        wanted = wanted if isinstance(wanted, list) else [wanted]
        if values[key] not in wanted:
            return False
    return True


def _expand(spec: StudySpec) -> list[dict]:
    runs = []
    seen = set()
    grid = spec.grid
    for method, n_train, aug_name, model, seed in itertools.product(
        grid.method, grid.n_train, grid.augmentation, grid.model, grid.seed
    ):
        axes = {"method": method, "n_train": n_train, "augmentation": aug_name, "model": model.name,
                "width": model.width, "seed": seed}
        if any(_matches(rule, axes) for rule in grid.exclude):
            continue
        # issue 19 C: [{}] without grid.settings
        for combo in setting_combinations(spec, method, SETTING_ID_RULES):
            run = _run(spec, method, n_train, aug_name, model, seed, combo)
            if run["run_id"] not in seen:  # combinations that resolve to one config are one run
                seen.add(run["run_id"])
                runs.append(run)
    return runs


def _run(spec: StudySpec, method: str, n_train: int, aug_name: str, model: ModelSpec, seed: int, combo: dict) -> dict:
    train, ssl = resolved_settings(spec, combo)
    identity = {
        "dataset": spec.dataset.identity(),  # files: settings + content sha256, not the root
        "method": method,
        "n_train": n_train,
        "augmentation": policy_identity(aug_name, spec.augmentations[aug_name]),
        "model": model.identity(),  # issue 18: options only where set
        "seed": seed,
        "train": {k: v for k, v in train.items() if k not in EXECUTION_ONLY_TRAIN_FIELDS},
    }
    method_spec = METHODS[method]
    if method_spec.settings is not None:
        # Only self-supervised runs get these keys: supervised ids stay what they always were.
        identity["ssl"] = {"projector": ssl["projector"], method_spec.settings: ssl[method_spec.settings]}
    if not method_spec.uses_labels:
        for key in SUPERVISED_ONLY_TRAIN_FIELDS:
            del identity["train"][key]
    # Evaluation settings are not part of the id: changing them re-evaluates, never retrains.
    return {"run_id": short_hash(identity), "study": spec.study, **identity, "train": train, "eval": spec.eval.model_dump()}


def _repetition_problems(spec: StudySpec) -> list[str]:
    """Policies with rounds: first_round_clean needs rounds; supervised runs only; the fixed set fits."""
    problems = []
    ds = spec.dataset
    for policy, written in spec.augmentations.items():
        if not isinstance(written, RepeatedPolicySpec):
            continue
        if written.rounds is None:
            if written.first_round_clean:
                problems.append(f"augmentations.{policy}.first_round_clean: needs rounds; allowed: set rounds, or "
                                f"leave first_round_clean false")
            continue
        if policy not in spec.grid.augmentation:
            continue
        self_supervised = sorted(m for m in spec.grid.method if not METHODS[m].uses_labels)
        if self_supervised:
            problems.append(f"augmentations.{policy}.rounds: a fixed set of copies trains supervised runs only, but "
                            f"grid.method has {', '.join(self_supervised)} (two fresh views per step); allowed: "
                            f"leave rounds unset, or train this policy in a supervised study")
        if ds.stores_pixels:
            try:
                shape = ds.prepared()["sample_shape"]
            except Exception:  # a missing file is reported once, by the dataset check
                continue
            sample_bytes = math.prod(shape)  # uint8
        else:
            values = getattr(ds, "length", None) or _FIXED_SAMPLE_VALUES.get(ds.name)
            if values is None:
                continue  # checked when the run starts (train/repetitions.py)
            sample_bytes = 4 * values
        n = max(spec.grid.n_train)
        if n * written.rounds * sample_bytes > MAX_REPETITION_BYTES:
            largest = max(MAX_REPETITION_BYTES // (n * sample_bytes), 0)
            problems.append(f"augmentations.{policy}.rounds: {n} images x {written.rounds} rounds x {sample_bytes} "
                            f"bytes exceed the {MAX_REPETITION_BYTES // 2**30} GiB the fixed set may take on the "
                            f"device; allowed: rounds <= {largest} at n_train {n}")
    return problems


def _view_policy_problems(spec: StudySpec) -> list[str]:
    """A policy with `views` draws the two views of a self-supervised method: no run that sees one
    image per step (a supervised method) may train with it."""
    problems = []
    for policy, written in spec.augmentations.items():
        if not isinstance(written, ViewPoliciesSpec) or policy not in spec.grid.augmentation:
            continue
        grid = spec.grid
        supervised = sorted({method for method, n_train, model, seed in itertools.product(
            grid.method, grid.n_train, grid.model, grid.seed) if METHODS[method].uses_labels and not any(
            _matches(rule, {"method": method, "n_train": n_train, "augmentation": policy, "model": model.name,
                            "width": model.width, "seed": seed}) for rule in grid.exclude)})
        if supervised:
            problems.append(f"augmentations.{policy}.views: one policy per view is for self-supervised methods (two "
                            f"views per image), but {', '.join(supervised)} runs train with it; allowed: a list of "
                            f"ops for them, or grid.exclude {{method: {supervised[0]}, augmentation: {policy}}}")
    return problems


def _cross_check(spec: StudySpec) -> list[str]:
    """Checks that need more than one field: sizes vs. the dataset, ops and models vs. the data."""
    problems = []
    ds: DatasetSpec = spec.dataset
    # --- issue 16: a dataset read from files is found, checked and prepared before anything else.
    if ds.stores_pixels:
        from dataworth.data.readers import DataFileError

        try:
            ds.prepared()
        except DataFileError as exc:
            return [f"dataset: {exc}"]
        if ds.normalize_problem():
            return [ds.normalize_problem()]
    # --- issue 16 item 4: every eval.test_sets reference is found and fits the training data.
    if spec.eval.test_sets:
        from dataworth.evaluate.test_sets import check_against_dataset, check_test_sets

        if not ds.stores_pixels:
            return [f"eval.test_sets: {ds.name} is not read from dataset files; test sets are references to "
                    "dataset files (cifar10:test, cifar10c:fog@3, ...) and need a dataset that is (cifar10, cinic10, ...)"]
        test_set_problems = check_test_sets(spec.eval.test_sets)
        if test_set_problems:
            return test_set_problems
        test_set_problems = check_against_dataset(ds, spec.eval.test_sets)
        if test_set_problems:
            return test_set_problems
    # ---
    modality = ds.modality
    pool = ds.train_pool_size()
    for i, n in enumerate(spec.grid.n_train):
        if n > pool:
            problems.append(
                f"grid.n_train[{i}]: {n} is larger than the {ds.name} training pool ({pool} samples); "
                f"allowed: 1..{pool}" + (" (raise dataset.train_pool)" if "train_pool" in type(ds).model_fields else "")
            )
    if len(set(spec.grid.n_train)) != len(spec.grid.n_train):
        problems.append(f"grid.n_train: duplicate sizes in {spec.grid.n_train}")
    if len(set(spec.grid.seed)) != len(spec.grid.seed):
        problems.append(f"grid.seed: duplicate seeds in {spec.grid.seed}")
    if len(set(spec.grid.method)) != len(spec.grid.method):
        problems.append(f"grid.method: duplicate methods in {spec.grid.method}")
    if len(set(spec.grid.augmentation)) != len(spec.grid.augmentation):
        # The same runs twice: two jobs would write one run directory.
        problems.append(f"grid.augmentation: duplicate policies in {spec.grid.augmentation}")
    for policy in spec.augmentations:
        if not re.match(NAME_PATTERN, policy) or len(policy) > NAME_MAX_LENGTH:
            problems.append(f"augmentations: policy name {policy!r} is not allowed; allowed: letters, digits and "
                            f"_.- (starting with a letter or digit), at most {NAME_MAX_LENGTH} characters")
    values_per_sample = getattr(ds, "length", None) or _FIXED_SAMPLE_VALUES.get(ds.name)
    if values_per_sample and "train_pool" in type(ds).model_fields:
        samples = ds.train_pool + 2 * ds.test_size  # train pool, test set, OOD set
        if samples * values_per_sample * 4 > MAX_GENERATED_DATASET_BYTES:
            largest = MAX_GENERATED_DATASET_BYTES // (4 * values_per_sample)
            problems.append(
                f"dataset: train_pool ({ds.train_pool}) + 2 x test_size ({ds.test_size}) = {samples} samples of "
                f"{values_per_sample} float32 values exceed the {MAX_GENERATED_DATASET_BYTES // 2**30} GiB a generated "
                f"dataset may take in memory; allowed: train_pool + 2 x test_size <= {largest}"
            )
    # --- issue 19: the local-complexity neighbourhood spans that many orthonormal input directions
    local = spec.eval.local_complexity
    if local.enabled or spec.train.log_local_complexity_every:
        dims = math.prod(ds.prepared()["sample_shape"]) if ds.stores_pixels else values_per_sample
        if dims and local.directions > dims:
            problems.append(f"eval.local_complexity.directions: {local.directions} orthonormal directions do not "
                            f"exist in the {dims} input dimensions of {ds.name}; allowed: 1..{dims}")
    # ---
    for key, size in (("eval.labeled", spec.eval.labeled), ("eval.rankme.samples", spec.eval.rankme.samples)):
        if size != "full" and size > pool:
            problems.append(f"{key}: {size} is larger than the {ds.name} training pool ({pool} samples); "
                            f"allowed: full or 1..{pool}")
    labeled = pool if spec.eval.labeled == "full" else spec.eval.labeled
    if spec.eval.knn.k > labeled:
        problems.append(f"eval.knn.k: {spec.eval.knn.k} neighbours but the labeled set (eval.labeled) has "
                        f"{labeled} samples; allowed: 1..{labeled}")
    for i, name in enumerate(spec.grid.augmentation):
        if name not in spec.augmentations:
            problems.append(
                f"grid.augmentation[{i}]: unknown policy {name!r}; allowed: the names under augmentations: "
                f"{', '.join(spec.augmentations) or '(none defined)'}"
            )
    problems += _repetition_problems(spec)
    problems += _view_policy_problems(spec)
    if spec.reference is not None:  # issue 18 item 4
        from dataworth.analysis.reference import reference_problems

        problems += reference_problems(spec, [run_row(run) for run in _expand(spec)], REFERENCE_SETTING_KEYS)
    for policy, written in spec.augmentations.items():
        per_view = isinstance(written, ViewPoliciesSpec)
        for v, ops in enumerate(policy_views(written)):
            where = f"augmentations.{policy}.views[{v}]" if per_view else f"augmentations.{policy}"
            for j, op in enumerate(ops):
                if modality not in op.modalities:
                    allowed = sorted(k for k, s in OP_SPECS.items() if modality in s.modalities)
                    problems.append(
                        f"{where}[{j}].op: {op.op!r} does not apply to {modality} data ({ds.name}); "
                        f"allowed: {', '.join(allowed)}"
                    )
                # --- issue 17: pixel ops (colour, histogram, automatic policies) need 0..255 pixels ---
                elif op.needs_pixels and not getattr(ds, "stores_pixels", False):
                    allowed = sorted(k for k, s in OP_SPECS.items() if modality in s.modalities and not s.needs_pixels)
                    problems.append(
                        f"{where}[{j}].op: {op.op!r} acts on 0..255 pixel values, but {ds.name} stores "
                        f"standardised values; allowed here: {', '.join(allowed)}"
                    )
                elif ds.stores_pixels and (why := op.size_problem(*ds.prepared()["sample_shape"][1:])):
                    problems.append(f"{where}[{j}].{why}")
    for i, model in enumerate(spec.grid.model):
        if modality not in MODEL_MODALITIES[model.name]:
            allowed = sorted(k for k, m in MODEL_MODALITIES.items() if modality in m)
            problems.append(
                f"grid.model[{i}].name: {model.name!r} does not take {modality} data ({ds.name}); allowed: {', '.join(allowed)}"
            )
        # --- issue 18: a model that needs a particular image shape (swin's windows, vgg13's pools)
        elif ds.stores_pixels and (why := input_problem(model.name, tuple(ds.prepared()["sample_shape"]))):
            problems.append(f"grid.model[{i}].name: {model.name} {why} ({ds.name})")
    names = [(m.name, m.width) for m in spec.grid.model]
    if len(set(names)) != len(names):
        problems.append("grid.model: duplicate (name, width) entries")
    axis_values = {
        "method": set(spec.grid.method),
        "n_train": set(spec.grid.n_train),
        "augmentation": set(spec.grid.augmentation),
        "model": {m.name for m in spec.grid.model},
        "width": {m.width for m in spec.grid.model},
        "seed": set(spec.grid.seed),
    }
    problems += setting_problems(spec, SETTING_ID_RULES)  # issue 19 C
    for i, rule in enumerate(spec.grid.exclude):
        if not rule:
            problems.append(f"grid.exclude[{i}]: empty rule would exclude every run")
        for key, value in rule.items():
            for v in value if isinstance(value, list) else [value]:
                if v not in axis_values[key]:
                    problems.append(
                        f"grid.exclude[{i}].{key}: {v!r} is not a value of the grid; allowed: {sorted(axis_values[key], key=str)}"
                    )
    return problems


# A study file is a few KB; a bigger one is a mistake (or /dev/zero), not a study.
MAX_STUDY_FILE_BYTES = 10 * 2**20
# YAML aliases (*name) are fine for reuse, but nested ones multiply: nine levels of nine make a
# "billion laughs" document of a few lines that hangs whatever walks it. Values, counted as written
# out; the largest shipped study has a few hundred.
MAX_STUDY_VALUES = 100_000


def _values_written_out(value: Any, memo: dict[int, int]) -> int:
    """How many values `value` holds with every alias written out (each shared node counted once
    per use, computed once: linear in the document)."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) not in memo:
        items = list(value.values()) + list(value.keys()) if isinstance(value, dict) else value
        memo[id(value)] = min(1 + sum(_values_written_out(v, memo) for v in items), 10 * MAX_STUDY_VALUES)
    return memo[id(value)]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that appears twice in one mapping (PyYAML keeps the
    last silently: a second `none:` policy would change what the reference policy means)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise StudyError([f"duplicate key {key!r} at line {line} (first at line {seen[key]}); "
                                  "each key may appear once in a mapping"], self.name)
            seen[key] = line
        return super().construct_mapping(node, deep)


def _unique_json_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise StudyError([f"duplicate key {key!r}; each key may appear once in an object"])
    return dict(pairs)


def read_study_file(path: str | Path, label: str | None = None) -> Any:
    """The parsed study file (YAML, or JSON for the study.json the workflow writes), or a StudyError
    naming what is wrong: missing, a folder, not UTF-8, not YAML, a key given twice."""
    path = Path(path)
    label = label or str(path)
    if not path.exists():
        raise StudyError([f"file not found: {path}"], label)
    if path.is_dir():
        raise StudyError([f"{path} is a folder; give a study file (.yaml)"], label)
    if not path.is_file():  # a FIFO or a device would block or never end
        raise StudyError([f"{path} is not a regular file; give a study file (.yaml)"], label)
    if path.stat().st_size > MAX_STUDY_FILE_BYTES:
        raise StudyError([f"{path.stat().st_size} bytes; a study file may have at most {MAX_STUDY_FILE_BYTES}"], label)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StudyError([f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                          "save the file as UTF-8"], label) from None
    if path.suffix == ".json":
        # JSON as JSON: YAML 1.1 would read json.dumps's 1e-05 as text.
        try:
            return json.loads(text, object_pairs_hook=_unique_json_keys)
        except StudyError as exc:
            raise StudyError(exc.problems, label) from None
        except json.JSONDecodeError as exc:
            raise StudyError([f"not valid JSON: {exc}"], label) from None
    loader = _UniqueKeyLoader(text)
    loader.name = label
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise StudyError([f"not valid YAML: {exc}"], label) from None
    finally:
        loader.dispose()
    if _values_written_out(raw, {}) > MAX_STUDY_VALUES:
        raise StudyError([f"more than {MAX_STUDY_VALUES} values once its YAML aliases (*name) are written out; "
                          "a study has a few hundred"], label)
    return raw


INT64_MAX = 2**63 - 1


def _non_finite(value: Any, where: str = "") -> list[str]:
    """Fields holding .inf or .nan (no setting of a study means either), or an integer beyond int64
    (seeds, sizes and steps are int64 in the Parquet files and in torch)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where or '(top level)'}: {value} is not a finite number; allowed: a finite number"]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        return [f"{where or '(top level)'}: {value} does not fit in 64 bits; allowed: at most {INT64_MAX}"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{where}[{i}]")]
    return []


def load_study(source: str | Path | dict, name: str | None = None) -> Study:
    """Validate a study given as a YAML path or an already-parsed dict (Snakemake's `config`)."""
    if isinstance(source, dict):
        raw, label = source, name or "config"
    else:
        label = name or str(source)
        raw = read_study_file(source, label)
    if not isinstance(raw, dict):
        raise StudyError(["the study must be a mapping with keys study, dataset, augmentations, grid, train"], label)
    if problems := _non_finite(raw):
        raise StudyError(problems, label)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise StudyError([_format_error(e) for e in exc.errors()], label) from None
    if quoted := _quoted_numbers(raw):
        raise StudyError(quoted, label)
    return Study(spec, label)


def _quoted_numbers(raw: dict) -> list[str]:
    """Numbers given as text ("200"), which pydantic's lax mode would convert silently: found by
    validating again in strict mode, keeping only those errors (strict mode also wants tuples
    where YAML gives lists, which is fine)."""
    try:
        StudySpec.model_validate(raw, strict=True)
    except ValidationError as exc:
        return [_format_error(e) for e in exc.errors()
                if e["type"] in ("int_type", "float_type") and isinstance(e.get("input"), str)]
    return []
