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
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, field_validator, model_validator

from dataworth.augment.ops import OP_SPECS, OpSpec
from dataworth.data.datasets import DATASET_SPECS, DatasetSpec
from dataworth.methods import METHODS
from dataworth.models import MODEL_MODALITIES
from dataworth.runs import STAGES, StudyDir

RUN_ID_LENGTH = 12
# Settings that decide where or how fast a run executes, not what it computes: left out of the
# run id so a study moved from a laptop to a cluster keeps its run ids. (The `eval` section is
# left out too: a run's id names what was trained.)
EXECUTION_ONLY_TRAIN_FIELDS = ("device", "checkpoint_every_seconds", "compile")
# Train settings a self-supervised run does not use (it has no labels): left out of its id.
SUPERVISED_ONLY_TRAIN_FIELDS = ("label_smoothing",)

Method = Literal[tuple(METHODS)]


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
    name: Literal["mlp", "cnn1d", "cnn2d", "resnet18"] = Field(
        description="architecture: mlp (any data), cnn1d (1D signals), cnn2d or resnet18 (CIFAR variant; images)"
    )
    width: int = Field(gt=0, description="hidden units (mlp) or base channels (cnn1d, cnn2d, resnet18)")


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

    @field_validator("extra")
    @classmethod
    def _no_flag_with_a_setting(cls, v: str) -> str:
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


DatasetUnion = Annotated[Union[tuple(DATASET_SPECS.values())], Field(discriminator="name")]
OpUnion = Annotated[Union[tuple(OP_SPECS.values())], Field(discriminator="op")]


class StudySpec(_Strict):
    study: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="name; outputs go to results/<study>/")
    dataset: DatasetUnion = Field(description="the dataset: its name and settings")
    augmentations: dict[str, list[OpUnion]] = Field(description="named policies: a list of ops each; [] is no augmentation")
    grid: GridSpec
    train: TrainSpec
    eval: EvalSpec = EvalSpec()
    ssl: SslSpec = SslSpec()
    tracking: TrackingSpec = TrackingSpec()
    resources: ResourcesSpec = Field(default=ResourcesSpec(), description="what cluster jobs ask for (execution-only)")


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
    grid = spec.grid
    for method, n_train, aug_name, model, seed in itertools.product(
        grid.method, grid.n_train, grid.augmentation, grid.model, grid.seed
    ):
        axes = {"method": method, "n_train": n_train, "augmentation": aug_name, "model": model.name,
                "width": model.width, "seed": seed}
        if any(_matches(rule, axes) for rule in grid.exclude):
            continue
        train = spec.train.model_dump()
        identity = {
            "dataset": spec.dataset.identity(),  # files: settings + content sha256, not the root
            "method": method,
            "n_train": n_train,
            "augmentation": {"name": aug_name, "ops": [op.model_dump() for op in spec.augmentations[aug_name]]},
            "model": model.model_dump(),
            "seed": seed,
            "train": {k: v for k, v in train.items() if k not in EXECUTION_ONLY_TRAIN_FIELDS},
        }
        method_spec = METHODS[method]
        if method_spec.settings is not None:
            # Only self-supervised runs get these keys: supervised ids stay what they always were.
            identity["ssl"] = {
                "projector": spec.ssl.projector.model_dump(),
                method_spec.settings: getattr(spec.ssl, method_spec.settings).model_dump(),
            }
        if not method_spec.uses_labels:
            for key in SUPERVISED_ONLY_TRAIN_FIELDS:
                del identity["train"][key]
        # Evaluation settings are not part of the id: changing them re-evaluates, never retrains.
        run = {"run_id": short_hash(identity), "study": spec.study, **identity, "train": train, "eval": spec.eval.model_dump()}
        runs.append(run)
    return runs


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
    for policy, ops in spec.augmentations.items():
        for j, op in enumerate(ops):
            if modality not in op.modalities:
                allowed = sorted(k for k, s in OP_SPECS.items() if modality in s.modalities)
                problems.append(
                    f"augmentations.{policy}[{j}].op: {op.op!r} does not apply to {modality} data ({ds.name}); "
                    f"allowed: {', '.join(allowed)}"
                )
            # --- issue 17: pixel ops (colour, histogram, automatic policies) need 0..255 pixels ---
            elif op.needs_pixels and not getattr(ds, "stores_pixels", False):
                allowed = sorted(k for k, s in OP_SPECS.items() if modality in s.modalities and not s.needs_pixels)
                problems.append(
                    f"augmentations.{policy}[{j}].op: {op.op!r} acts on 0..255 pixel values, but {ds.name} stores "
                    f"standardised values; allowed here: {', '.join(allowed)}"
                )
    for i, model in enumerate(spec.grid.model):
        if modality not in MODEL_MODALITIES[model.name]:
            allowed = sorted(k for k, m in MODEL_MODALITIES.items() if modality in m)
            problems.append(
                f"grid.model[{i}].name: {model.name!r} does not take {modality} data ({ds.name}); allowed: {', '.join(allowed)}"
            )
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


def load_study(source: str | Path | dict, name: str | None = None) -> Study:
    """Validate a study given as a YAML path or an already-parsed dict (Snakemake's `config`)."""
    if isinstance(source, dict):
        raw, label = source, name or "config"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.exists():
            raise StudyError([f"file not found: {path}"], label)
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise StudyError([f"not valid YAML: {exc}"], label) from None
    if not isinstance(raw, dict):
        raise StudyError(["the study must be a mapping with keys study, dataset, augmentations, grid, train"], label)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise StudyError([_format_error(e) for e in exc.errors()], label) from None
    return Study(spec, label)
