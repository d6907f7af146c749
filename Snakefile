# dataworth: load and validate the study, include one rule file per stage, target `all`.
# The study is params.yaml, or the file given with --configfile (then params.yaml is not read).
import json
import sys

from dataworth.cluster.resources import snakemake_resources
from dataworth.packs import Packs
from dataworth.runs import EVALUATIONS
from dataworth.study import StudyError, load_study, short_hash
from dataworth.files import keep_aside, put_back

if not workflow.overwrite_configfiles:

    configfile: "params.yaml"


try:
    STUDY = load_study(config, name=", ".join(map(str, workflow.overwrite_configfiles)) or "params.yaml")
except StudyError as error:
    # One clear message naming every bad field; nothing is scheduled.
    raise WorkflowError(str(error)) from None

try:
    # What train and evaluate jobs ask SLURM for (study's resources.slurm + DATAWORTH_SLURM_*).
    SLURM_RESOURCES = {rule: snakemake_resources(STUDY.spec.resources.slurm, rule) for rule in ("train", "evaluate")}
except ValueError as error:
    raise WorkflowError(str(error)) from None

# Every path of the study's results folder comes from its StudyDir (dataworth/runs.py).
STUDY_DIR = STUDY.study_dir("results")
RESULTS = str(STUDY_DIR.path)
STUDY_JSON = str(STUDY_DIR.study_json)
DATA = str(STUDY_DIR.data(STUDY.dataset_id()))
RUNS = str(STUDY_DIR.runs)

try:
    # Which runs each train and evaluation job takes (resources.runs_per_job); see dataworth/packs.py.
    PACKS = Packs(STUDY, STUDY_DIR)
except ValueError as error:
    raise WorkflowError(str(error)) from None
PACK_DIR = str(STUDY_DIR.pack_dir("{pack_id}"))

# Every pack's done-marker of every stage, all targets of `all`: Snakemake plans a job for a
# missing marker only when a target asks for it (an intermediate file going missing reruns nothing).
PACK_MARKERS = PACKS.markers()

# A run's deleted file is made again, and an evaluation run with other eval settings runs again
# even where Snakemake has no records of its own (after a `dvc pull`, or `dataworth submit`): the
# stale done-marker goes before planning (so a dry run shows the job too), and the pack's job
# redoes only what is needed (training skips runs already trained). Markers are bookkeeping:
# removing one loses no result. Only the main process checks: jobs parse this file too.
if workflow.is_main_process:
    for marker, why in PACKS.stale_markers():
        print(f"dataworth: pack {marker.parent.name}'s {marker.stem} job runs again: {why}", file=sys.stderr)
        marker.unlink(missing_ok=True)


onstart:
    # Jobs read their runs from study.json and their pack's runs (--pack) from packs.json (both
    # written only when they changed). Neither is a rule output: a rewrite must not make finished
    # runs look outdated, and which runs exist is decided by their ids, hashes of what they compute.
    STUDY.write_json(STUDY_JSON)
    PACKS.write()
    # Snakemake deletes collect's output before collect runs: the last complete metrics.parquet is
    # kept aside until the workflow ends, and put back if it ends in error.
    keep_aside(STUDY_DIR.metrics, STUDY_DIR.metrics_aside)


onsuccess:
    STUDY_DIR.metrics_aside.unlink(missing_ok=True)


onerror:
    if put_back(STUDY_DIR.metrics, STUDY_DIR.metrics_aside):
        print(f"dataworth: the workflow failed; {STUDY_DIR.metrics} is the previous one (outdated: the next "
              "run collects again)", file=sys.stderr)


wildcard_constraints:
    pack_id="[0-9a-f]{12}",


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/track.smk"


rule all:
    input:
        str(STUDY_DIR.metrics),
        str(STUDY_DIR.report),
        PACK_MARKERS,
    default_target: True
