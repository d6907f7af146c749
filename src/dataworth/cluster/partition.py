"""Does what a job asks for fit the SLURM partition it goes to? Checked before anything is submitted.

A job asking for more CPUs, memory or GPUs than any node of its partition has, or for a longer
time than the partition allows, is accepted by sbatch and then pends forever (reason
PartitionConfig or Resources) while Snakemake waits without a word. So the workflow asks SLURM
what the partition offers (`sinfo`, `scontrol show partition`) and refuses, naming the setting,
the request and what the partition has.

The parsers take the commands' text, so they are tested with captured output.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

# sinfo, one line per node of the partition: name|CPUs|memory (MB)|generic resources
SINFO_FORMAT = "%N|%c|%m|%G"


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int


@dataclass(frozen=True)
class Partition:
    name: str
    nodes: tuple[Node, ...]
    max_time_min: float | None  # None: unlimited
    max_mem_per_node_mb: int | None
    max_cpus_per_node: int | None


def parse_gres_gpus(gres: str) -> int:
    """GPUs in a node's gres ('gpu:2', 'gpu:a100:4(S:0-1)', 'gpu:2,shard:8', '(null)')."""
    total = 0
    for item in gres.split(","):
        match = re.match(r"^gpu(?::[^:(]+)?:(\d+)", item.strip())
        if match:
            total += int(match.group(1))
    return total


def parse_sinfo_nodes(text: str) -> tuple[Node, ...]:
    """`sinfo -h -N -p <partition> -o '%N|%c|%m|%G'` -> its nodes (a node listed twice counts once)."""
    nodes = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, cpus, mem, gres = line.strip().split("|")
        nodes[name] = Node(name, int(cpus.rstrip("+")), int(mem.rstrip("+")), parse_gres_gpus(gres))
    return tuple(nodes.values())


def parse_slurm_minutes(value: str) -> float | None:
    """A SLURM time ('UNLIMITED', 'M', 'M:S', 'H:M:S', 'D-H', 'D-H:M', 'D-H:M:S') in minutes."""
    if value in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, clock = value.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
        return int(days) * 1440 + hours * 60 + minutes + seconds / 60
    if len(parts) == 3:
        return parts[0] * 60 + parts[1] + parts[2] / 60
    if len(parts) == 2:
        return parts[0] + parts[1] / 60
    return float(parts[0])


def _limit(value: str | None) -> int | None:
    return None if value in (None, "UNLIMITED", "0") else int(re.match(r"\d+", value).group())


def parse_partition(scontrol: str, sinfo: str) -> Partition:
    """`scontrol show partition <name> --oneliner` and the sinfo node lines -> the partition."""
    fields = dict(item.split("=", 1) for item in scontrol.split() if "=" in item)
    return Partition(
        name=fields["PartitionName"],
        nodes=parse_sinfo_nodes(sinfo),
        max_time_min=parse_slurm_minutes(fields.get("MaxTime", "UNLIMITED")),
        max_mem_per_node_mb=_limit(fields.get("MaxMemPerNode")),
        max_cpus_per_node=_limit(fields.get("MaxCPUsPerNode")),
    )


def request_problems(rule: str, resources: dict, partition: Partition) -> list[str]:
    """What in a rule's request (snakemake_resources) no node of the partition can give."""
    cpus, mem, gpus = resources.get("cpus_per_task", 1), resources.get("mem_mb", 0), resources.get("gpu", 0)
    runtime = resources.get("runtime")
    where = f"partition {partition.name!r}"
    if not partition.nodes:
        return [f"resources.slurm.partition: {where} has no nodes (sinfo lists none)"]
    problems = []
    most_cpus = max(n.cpus for n in partition.nodes)
    if partition.max_cpus_per_node:
        most_cpus = min(most_cpus, partition.max_cpus_per_node)
    if cpus > most_cpus:
        problems.append(f"resources.slurm.cpus: {rule} jobs ask for {cpus} CPUs; the largest node of {where} "
                        f"offers {most_cpus}; allowed: 1..{most_cpus}")
    most_mem = max(n.mem_mb for n in partition.nodes)
    if partition.max_mem_per_node_mb:
        most_mem = min(most_mem, partition.max_mem_per_node_mb)
    if mem > most_mem:
        problems.append(f"resources.slurm.mem_mb: {rule} jobs ask for {mem} MB; the largest node of {where} "
                        f"offers {most_mem} MB; allowed: up to {most_mem}")
    most_gpus = max(n.gpus for n in partition.nodes)
    if gpus > most_gpus:
        problems.append(f"resources.slurm.gpus: {rule} jobs ask for {gpus} GPUs; the nodes of {where} have at most "
                        f"{most_gpus}; allowed: 0..{most_gpus}")
    if gpus and not problems:
        # One node must have all three at once.
        if not any(n.cpus >= cpus and n.mem_mb >= mem and n.gpus >= gpus for n in partition.nodes):
            problems.append(f"resources.slurm: {rule} jobs ask for {cpus} CPUs, {mem} MB and {gpus} GPUs on one node; "
                            f"no node of {where} has all of them")
    if runtime and partition.max_time_min is not None and runtime > partition.max_time_min:
        problems.append(f"resources.slurm.runtime_min: {rule} jobs ask for {runtime} min; {where} allows at most "
                        f"{partition.max_time_min:g} min (MaxTime)")
    return problems


def _run(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def query_partition(name: str | None) -> Partition:
    """Ask SLURM about the partition `name` (None: the cluster's default partition)."""
    if name is None:
        defaults = [p.rstrip("*") for p in _run(["sinfo", "-h", "-o", "%P"]).split() if p.endswith("*")]
        if not defaults:
            raise ValueError("resources.slurm.partition: this cluster has no default partition; set one")
        name = defaults[0]
    name = name.split(",")[0]  # several partitions: SLURM takes the first that fits; check the first
    try:
        scontrol = _run(["scontrol", "show", "partition", name, "--oneliner"])
    except subprocess.CalledProcessError as exc:
        raise ValueError(f"resources.slurm.partition: {name!r}: {exc.stderr.strip() or 'unknown partition'}; "
                         f"allowed: {', '.join(p.rstrip('*') for p in _run(['sinfo', '-h', '-o', '%P']).split())}") from None
    return parse_partition(scontrol, _run(["sinfo", "-h", "-N", "-p", name, "-o", SINFO_FORMAT]))


def check_requests(requests: dict[str, dict]) -> list[str]:
    """Problems of every rule's request (rule -> snakemake_resources) against its partition."""
    problems = []
    partitions: dict[str | None, Partition] = {}
    for rule, resources in requests.items():
        name = resources.get("slurm_partition")
        if name not in partitions:
            partitions[name] = query_partition(name)
        problems += request_problems(rule, resources, partitions[name])
    return problems
