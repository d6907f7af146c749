"""Packs: the runs one Snakemake job (and so one SLURM job) trains or evaluates.

A study has thousands of small runs; one job per run pays process start-up, scheduling and
queueing per run. `resources.runs_per_job` (K) puts up to K runs into a *pack*, and every job
works on one pack, in one process. Each run still owns its directory and its files.

Packs are stable, because a pack's job marks itself done with one marker file per stage
(`results/<study>/packs/<pack_id>/<stage>.done`), and a run moved to another pack would be
evaluated again. So the assignment is kept in `results/<study>/packs.json` (written when the
workflow starts, like study.json, and read back by every later parse, including the one inside
each SLURM job):

- runs already in a recorded pack stay there; runs new to the study get new packs;
- new packs hold runs of one *pack signature* (everything but n_train, augmentation and seed:
  same architecture and recipe), in study order, so a pack can train its runs concurrently;
- when runs_per_job changes, recorded packs that never started (no marker, no run directory)
  are packed again with the new K; started ones keep their runs.

A pack id is a hash of its run ids, so the same runs always make the same pack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from dataworth.runs import StudyDir
from dataworth.study import canonical_json, short_hash

# Run keys that may differ inside a pack: a pack shares everything else (model, recipe, method).
PER_RUN_KEYS = ("run_id", "n_train", "augmentation", "seed")


def pack_signature(run: dict) -> str:
    """What the runs of one pack share (execution-only train settings included: one job, one device)."""
    return canonical_json({key: value for key, value in run.items() if key not in PER_RUN_KEYS})


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def plan_packs(runs: list[dict], runs_per_job: int, recorded: dict | None = None,
               started: Callable[[str, list[str]], bool] = lambda pack_id, run_ids: True) -> dict:
    """The registry after placing every run of `runs`: {"runs_per_job": K, "packs": {id: [run ids]}}.

    `recorded` is the registry read back (or None); `started(pack_id, run_ids)` says whether a
    recorded pack has begun (only asked when runs_per_job changed). Recorded packs keep every run
    they ever held, so a run dropped from the study and added back finds its pack again.
    """
    recorded = recorded or {"runs_per_job": runs_per_job, "packs": {}}
    repack = recorded.get("runs_per_job") != runs_per_job
    packs = {
        pack_id: run_ids for pack_id, run_ids in recorded["packs"].items()
        if not repack or started(pack_id, run_ids)
    }
    placed = {run_id for run_ids in packs.values() for run_id in run_ids}
    by_signature: dict[str, list[str]] = {}
    for run in runs:
        if run["run_id"] not in placed:
            by_signature.setdefault(pack_signature(run), []).append(run["run_id"])
    for run_ids in by_signature.values():
        for chunk in _chunks(run_ids, runs_per_job):
            packs[short_hash(chunk)] = chunk
    return {"runs_per_job": runs_per_job, "packs": packs}


def current_packs(registry: dict, runs: list[dict]) -> dict[str, list[str]]:
    """pack id -> the runs of `runs` it holds, in study order (packs holding none are left out)."""
    order = {run["run_id"]: i for i, run in enumerate(runs)}
    packs = {}
    for pack_id, run_ids in registry["packs"].items():
        members = sorted((r for r in run_ids if r in order), key=order.get)
        if members:
            packs[pack_id] = members
    return packs


class Packs:
    """A study's packs under `results/<study>/`: read at parse time, written when the workflow starts."""

    def __init__(self, study, study_dir: StudyDir | str | Path):
        self.study = study
        self.study_dir = study_dir if isinstance(study_dir, StudyDir) else StudyDir(Path(study_dir))
        self.registry_path = self.study_dir.packs_json
        self.registry = plan_packs(study.runs, study.spec.resources.runs_per_job, self._read(), self._started)
        self.members = current_packs(self.registry, study.runs)
        self.pack_of = {run_id: pack_id for pack_id, run_ids in self.members.items() for run_id in run_ids}

    def _read(self) -> dict | None:
        if not self.registry_path.exists():
            return None
        try:
            return json.loads(self.registry_path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.registry_path}: unreadable pack registry ({exc}); delete it to pack anew "
                             "(finished runs are kept; their evaluations run again)") from None

    def _started(self, pack_id: str, run_ids: list[str]) -> bool:
        return self.study_dir.pack_dir(pack_id).exists() or any(
            self.study_dir.run_dir(run_id).path.exists() for run_id in run_ids
        )

    def stages(self, pack_id: str) -> list[str]:
        """The workflow's jobs for a pack: its runs' stages (they share their method, so their stages)."""
        return self.study.stages(self.study.run(self.members[pack_id][0]))

    def marker(self, pack_id: str, stage: str) -> Path:
        """The done-marker of a pack's `stage` job: the job's only Snakemake output."""
        return self.study_dir.marker(pack_id, stage)

    def markers(self, evaluations_only: bool = False) -> list[str]:
        """Every pack's done-markers (of its evaluations only, if asked), as the workflow names them."""
        return [str(self.marker(pack_id, stage)) for pack_id in self.members for stage in self.stages(pack_id)
                if not (evaluations_only and stage == "train")]

    def _missing(self, pack_id: str, stage: str) -> list[str]:
        """The pack's runs without a complete output of `stage`, each as "<run id> (<file>: why)"."""
        found = []
        for run_id in self.members[pack_id]:
            if problems := self.study_dir.run_dir(run_id).missing(stage):
                path, why = problems[0]
                found.append(f"{run_id} ({path.name} {why})")
        return found

    def marker_text(self, stage: str) -> str:
        """What a stage's done-marker holds: the eval settings an evaluation ran with (empty for train).

        Snakemake's params trigger needs its own records (.snakemake/metadata), which a `dvc pull`
        or `dataworth submit` does not bring; the marker carries what the evaluation used instead.
        """
        return "" if stage == "train" else self.study.eval_params(stage)

    def stale_markers(self) -> list[tuple[Path, str]]:
        """Done-markers that no longer tell the truth, each with why.

        A run's file is gone (a user deletes a run's directory, or one of its files, to have it
        made again), or an evaluation ran with other eval settings. Snakemake only sees the pack's
        marker, so the workflow removes such markers before it plans. The pack's job then redoes
        only what is needed: training skips runs already trained.
        """
        stale = []
        for pack_id in self.members:
            for stage in self.stages(pack_id):
                marker = self.marker(pack_id, stage)
                if not marker.exists():
                    continue
                if missing := self._missing(pack_id, stage):
                    stale.append((marker, f"run(s) {', '.join(missing)} lack their {stage} output"))
                elif (used := marker.read_text().strip()) != self.marker_text(stage):
                    stale.append((marker, f"it ran with other eval settings ({used or 'not recorded'})"))
        return stale

    def mark_finished(self, pack_id: str) -> list[str]:
        """Write the pack's done-markers of every stage all its runs have finished; the stages marked.

        For runs finished outside Snakemake (`dataworth submit`): a later `snakemake` then finds
        their packs done instead of running their jobs again. Markers are written after the runs'
        files, so modification times stay in pipeline order.
        """
        marked = []
        for stage in self.stages(pack_id):
            if not self._missing(pack_id, stage):
                marker = self.marker(pack_id, stage)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(self.marker_text(stage) + "\n")
                marked.append(stage)
        return marked

    def write(self) -> bool:
        """Record the packs (atomically, only if they changed); True if written."""
        from dataworth.files import write_text_atomic

        text = json.dumps(self.registry, indent=1, sort_keys=True) + "\n"
        if self.registry_path.exists() and self.registry_path.read_text() == text:
            return False
        write_text_atomic(self.registry_path, text)
        return True
