"""A study's SLURM requests checked against what the partition offers (issue 15 item 9), from
`scontrol show partition --oneliner` and `sinfo` output captured as text."""

from __future__ import annotations

from dataworth.cluster.partition import (
    Node,
    parse_gres_gpus,
    parse_partition,
    parse_slurm_minutes,
    request_problems,
)
from dataworth.cluster.resources import snakemake_resources
from dataworth.study import load_study

# The one-node test cluster (scripts/slurm/start.sh) on a 2-CPU machine, as scontrol and sinfo print it.
SCONTROL = (
    "PartitionName=main AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A "
    "DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED "
    "MaxTime=UNLIMITED MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED MaxCPUsPerSocket=UNLIMITED Nodes=localhost "
    "PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE "
    "PreemptMode=OFF State=UP TotalCPUs=2 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) "
    "DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=2,mem=7900M,node=1,billing=2,gres/gpu=2\n"
)
SINFO = "localhost|2|7900|gpu:2\n"


def test_slurm_times_in_minutes():
    assert parse_slurm_minutes("UNLIMITED") is None
    assert parse_slurm_minutes("30") == 30
    assert parse_slurm_minutes("30:30") == 30.5
    assert parse_slurm_minutes("2:00:00") == 120
    assert parse_slurm_minutes("1-00") == 1440
    assert parse_slurm_minutes("1-02:03") == 1440 + 123
    assert parse_slurm_minutes("2-00:00:30") == 2880.5


def test_gres_gpus():
    assert parse_gres_gpus("gpu:2") == 2
    assert parse_gres_gpus("gpu:a100:4(S:0-1)") == 4
    assert parse_gres_gpus("gpu:a100:4,gpu:v100:2,shard:8") == 6
    assert parse_gres_gpus("(null)") == 0


def test_the_default_study_on_a_two_cpu_node_is_refused_naming_each_setting(tiny_study):
    partition = parse_partition(SCONTROL, SINFO)
    assert partition.nodes == (Node("localhost", 2, 7900, 2),)
    spec = load_study(tiny_study).spec.resources.slurm  # the default: 1 GPU, 4 CPUs, 16000 MB, 60 min
    problems = request_problems("train", snakemake_resources(spec, "train", environ={}), partition)
    assert problems == [
        "resources.slurm.cpus: train jobs ask for 4 CPUs; the largest node of partition 'main' offers 2; allowed: 1..2",
        "resources.slurm.mem_mb: train jobs ask for 16000 MB; the largest node of partition 'main' offers 7900 MB; "
        "allowed: up to 7900",
    ]


def test_a_request_that_fits_passes(tiny_study):
    tiny_study["resources"] = {"slurm": {"cpus": 1, "mem_mb": 4000, "gpus": 2}}
    spec = load_study(tiny_study).spec.resources.slurm
    for rule in ("train", "evaluate"):
        assert request_problems(rule, snakemake_resources(spec, rule, environ={}), parse_partition(SCONTROL, SINFO)) == []


def test_time_gpus_and_partition_limits():
    scontrol = SCONTROL.replace("MaxTime=UNLIMITED", "MaxTime=1:00:00").replace(
        "MaxMemPerNode=UNLIMITED", "MaxMemPerNode=2000")
    partition = parse_partition(scontrol, "a|8|64000|(null)\nb|4|32000|gpu:1\n")
    request = {"cpus_per_task": 8, "mem_mb": 3000, "gpu": 1, "runtime": 90}
    assert request_problems("evaluate", request, partition) == [
        "resources.slurm.mem_mb: evaluate jobs ask for 3000 MB; the largest node of partition 'main' offers 2000 MB; "
        "allowed: up to 2000",
        "resources.slurm.runtime_min: evaluate jobs ask for 90 min; partition 'main' allows at most 60 min (MaxTime)",
    ]
    # 8 CPUs exist (node a) and a GPU exists (node b), but not on one node.
    request = {"cpus_per_task": 8, "mem_mb": 1000, "gpu": 1, "runtime": 30}
    assert request_problems("train", request, partition) == [
        "resources.slurm: train jobs ask for 8 CPUs, 1000 MB and 1 GPUs on one node; no node of partition 'main' "
        "has all of them"]
    assert request_problems("train", {"cpus_per_task": 1, "gpu": 2}, partition)[0].startswith(
        "resources.slurm.gpus: train jobs ask for 2 GPUs; the nodes of partition 'main' have at most 1")


def test_an_empty_partition_is_named():
    partition = parse_partition(SCONTROL, "")
    assert request_problems("train", {"cpus_per_task": 1}, partition) == [
        "resources.slurm.partition: partition 'main' has no nodes (sinfo lists none)"]


def test_pending_reasons_of_this_checkouts_jobs_are_printed_when_they_change(tmp_path):
    import io

    from dataworth.cluster.pending import PendingReporter

    here, elsewhere = tmp_path / "repo", tmp_path / "other"
    here.mkdir(), elsewhere.mkdir()
    out = io.StringIO()
    reporter = PendingReporter(str(here), out)
    first = (f"101|rule_train_wildcards_0123456789ab|Resources|{here}\n"
             f"102|rule_evaluate_wildcards_0123456789ab|Dependency|{here}\n"
             f"103|rule_train_wildcards_aaaaaaaaaaaa|PartitionConfig|{elsewhere}\n")  # another checkout's
    assert reporter.check(first) == [
        "dataworth: SLURM job 101 (train, pack 0123456789ab) is pending: Resources",
        "dataworth: SLURM job 102 (evaluate, pack 0123456789ab) is pending: Dependency",
    ]
    assert reporter.check(first) == []  # unchanged: said once
    assert reporter.check(f"101|rule_train_wildcards_0123456789ab|Priority|{here}\n") == [
        "dataworth: SLURM job 101 (train, pack 0123456789ab) is pending: Priority"]
    assert out.getvalue().count("\n") == 3
