"""What a train or evaluate job asks SLURM for, from the study's `resources.slurm` and the environment.

One source for both ways onto a cluster: the Snakemake rules (`snakemake --profile slurm`, via the
SLURM executor plugin's resource names) and `dataworth submit` (via submitit's parameters).
"""

from __future__ import annotations

import os
import shlex
from typing import Mapping

from pydantic import ValidationError

from dataworth.study import SlurmSpec

# Site-specific settings a user sets without editing the study or the profile; they win.
ENV_OVERRIDES = {
    "partition": "DATAWORTH_SLURM_PARTITION",
    "account": "DATAWORTH_SLURM_ACCOUNT",
    "qos": "DATAWORTH_SLURM_QOS",
    "extra": "DATAWORTH_SLURM_EXTRA",
}


def slurm_settings(spec: SlurmSpec, environ: Mapping[str, str] = os.environ) -> SlurmSpec:
    """The study's SLURM settings with the environment's overrides, validated like the study."""
    overrides = {field: environ[var] for field, var in ENV_OVERRIDES.items() if environ.get(var)}
    if not overrides:
        return spec
    try:
        return SlurmSpec.model_validate({**spec.model_dump(), **overrides})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = err["loc"][0] if err["loc"] else ""
            where = ENV_OVERRIDES.get(field, f"resources.slurm.{field}")
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        raise ValueError("; ".join(problems)) from None


def snakemake_resources(spec: SlurmSpec, rule: str, environ: Mapping[str, str] = os.environ) -> dict:
    """Resources for the train or evaluate rule, named as the SLURM executor plugin reads them.

    Run locally, none of them limits anything (Snakemake only limits resources given to
    --resources), so the same rules serve the laptop and the cluster.
    """
    s = slurm_settings(spec, environ)
    resources = {"runtime": s.runtime_min, "mem_mb": s.mem_mb, "cpus_per_task": s.cpus}
    if s.gpus:
        resources["gpu"] = s.gpus  # sbatch --gpus=N; the job step gets the same (srun --gpus=N)
    for key, value in (("slurm_partition", s.partition), ("slurm_account", s.account), ("qos", s.qos)):
        if value:
            resources[key] = value
    extra = s.extra.split()
    if rule == "train" and s.signal_seconds:
        # SIGTERM, not SIGUSR1: the signal reaches every process of the job step, and the Snakemake
        # process there waits for its job on SIGTERM but dies on SIGUSR1 (see the profile).
        extra.insert(0, f"--signal=TERM@{s.signal_seconds}")
    if extra:
        resources["slurm_extra"] = " ".join(extra)
    return resources


def submitit_parameters(spec: SlurmSpec, environ: Mapping[str, str] = os.environ) -> dict:
    """submitit AutoExecutor parameters for one run's job (train then evaluate)."""
    s = slurm_settings(spec, environ)
    params = {
        "timeout_min": s.runtime_min,
        "cpus_per_task": s.cpus,
        "gpus_per_node": s.gpus,
        "slurm_mem": f"{s.mem_mb}M",
        # submitit sends its preemption signal (USR2) this long before the time limit.
        "slurm_signal_delay_s": s.signal_seconds,
        "slurm_additional_parameters": {"requeue": True, **_long_flags(s.extra)},
    }
    for key, value in (("slurm_partition", s.partition), ("slurm_account", s.account), ("slurm_qos", s.qos)):
        if value:
            params[key] = value
    return params


def _long_flags(extra: str) -> dict:
    """'--constraint=a100 --exclusive' -> {'constraint': 'a100', 'exclusive': True} (submitit's form)."""
    flags = {}
    for token in shlex.split(extra):
        if not token.startswith("--"):
            raise ValueError(
                f"resources.slurm.extra: {token!r}: dataworth submit passes sbatch flags as --name or "
                "--name=value; write this flag that way"
            )
        name, _, value = token[2:].partition("=")
        flags[name] = value or True
    return flags
