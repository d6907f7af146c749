"""RankMe judged as Garrido et al. (2023) claim it: within one method and one augmentation policy.

Pooled over policies, RankMe against probe accuracy mostly measures the policy (augmented runs
probe better and have a lower rank; rankme_vs_probe.py shows that pooled number). The claim is
narrower: among runs of one method under one augmentation pipeline, differing in hyperparameters
(loss weights, temperature, projector width, learning rate), the run with the highest RankMe has
(nearly) the best probe accuracy. So per group (method, augmentation policy), across every other
axis of the study (sizes n_train, models and widths, seeds, and the settings of grid.settings):

- Spearman's rho between RankMe and probe_test_accuracy, with the number of runs behind it;
- the pick: the run with the highest RankMe, its probe accuracy, the best probe accuracy in the
  group, the accuracy lost by choosing by RankMe instead of by the probe, and the pick's rank.

Groups with fewer than MIN_RUNS runs get no numbers ("too few runs").
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from dataworth.analysis import tables
from dataworth.analysis.rankme_vs_probe import ACCURACY, MIN_RUNS, RANKME_COLUMNS

GROUP = ("method", "augmentation")
ACROSS = "sizes (n_train), models and widths, seeds, and the settings varied by grid.settings"
TABLE = "rankme_within_groups"
COLUMNS = ["method", "augmentation", "rankme", "runs", "spearman", "p_value", "chosen_run", "chosen_accuracy",
           "best_run", "best_accuracy", "accuracy_lost", "chosen_rank"]


def _usable(runs: pd.DataFrame, rankme_column: str) -> pd.DataFrame:
    if rankme_column not in runs.columns:
        return runs.iloc[:0]
    finished = runs[runs["status"] == "ok"]
    values = finished[[rankme_column, ACCURACY]].apply(pd.to_numeric, errors="coerce")
    return finished[np.isfinite(values.to_numpy(dtype=float)).all(axis=1)]


def choice(rankme: np.ndarray, accuracy: np.ndarray) -> tuple[int, int, float, int]:
    """(index chosen by RankMe, index best by the probe, accuracy lost, rank of the choice by probe
    accuracy: 1 = the best; ties share the better rank). Ties in RankMe go to the first run."""
    chosen = int(np.argmax(rankme))
    best = int(np.argmax(accuracy))
    rank = 1 + int((accuracy > accuracy[chosen]).sum())
    return chosen, best, float(accuracy[best] - accuracy[chosen]), rank


def within_groups(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per group and RankMe column (schema: COLUMNS), sorted by group."""
    from scipy.stats import spearmanr

    rows = []
    for (method, policy), runs in metrics.groupby(list(GROUP), sort=True):
        for column in RANKME_COLUMNS:
            usable = _usable(runs, column).sort_values("run_id", kind="stable")
            row = dict(method=method, augmentation=policy, rankme=column, runs=len(usable))
            if len(usable) >= MIN_RUNS:
                rankme = usable[column].to_numpy(dtype=float)
                accuracy = usable[ACCURACY].to_numpy(dtype=float)
                with warnings.catch_warnings():  # a constant column gives NaN, which says it
                    warnings.simplefilter("ignore")
                    result = spearmanr(rankme, accuracy)
                chosen, best, lost, rank = choice(rankme, accuracy)
                row.update(spearman=float(result.statistic), p_value=float(result.pvalue),
                           chosen_run=usable["run_id"].iloc[chosen], chosen_accuracy=accuracy[chosen],
                           best_run=usable["run_id"].iloc[best], best_accuracy=accuracy[best],
                           accuracy_lost=lost, chosen_rank=rank)
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"runs": "int64", "chosen_rank": "Int64"})


def table(groups: pd.DataFrame, pooled: pd.DataFrame) -> tables.Table:
    """Groups that have runs with both numbers, beside the method's pooled rho (rankme_vs_probe)."""
    pooled_rho = {(r.method, r.rankme): r.spearman for r in pooled.itertuples()}
    rows = []
    for r in groups[groups["runs"] > 0].itertuples():
        few = r.runs < MIN_RUNS
        rows.append([r.method, r.augmentation, RANKME_COLUMNS[r.rankme], str(r.runs),
                     "too few runs" if few else tables._number(r.spearman, ".2f"),
                     tables._number(pooled_rho.get((r.method, r.rankme), np.nan), ".2f"),
                     tables._number(r.chosen_accuracy, ".3f"), tables._number(r.best_accuracy, ".3f"),
                     tables._number(r.accuracy_lost, ".3f"),
                     "–" if few else f"{r.chosen_rank} of {r.runs}"])
    header = ["method", "policy", "RankMe of", "runs", "Spearman ρ in group", "pooled ρ (method)",
              "probe acc. of RankMe's pick", "best probe acc.", "lost by RankMe's pick", "pick's rank"]
    return tables.Table(
        header=header, rows=rows, align="lllrrrrrrr",
        latex_header=[h.replace("ρ", "$\\rho$") for h in header],
        notes=[f"A group is one method and one augmentation policy, across {ACROSS}.",
               f"RankMe's pick: the run with the highest RankMe; lost: the group's best {ACCURACY} minus the pick's.",
               f"Pooled ρ: every run of the method, all policies together. Fewer than {MIN_RUNS} runs: no numbers."],
    )


def answers(groups: pd.DataFrame) -> list[str]:
    """One line per group: does RankMe pick (nearly) the best run, and what does its pick cost."""
    lines = []
    for r in groups[groups["runs"] > 0].itertuples():
        what = f"{r.method} / {r.augmentation}, RankMe of the {RANKME_COLUMNS[r.rankme]} ({r.runs} runs)"
        if r.runs < MIN_RUNS:
            lines.append(f"- {what}: too few runs to judge (fewer than {MIN_RUNS}).")
            continue
        verdict = "the best run" if r.chosen_rank == 1 else f"rank {r.chosen_rank} of {r.runs} by the probe"
        lines.append(f"- {what}: ρ = {tables._number(r.spearman, '.2f')}; the highest-RankMe run (`{r.chosen_run}`) "
                     f"is {verdict}, probe accuracy {r.chosen_accuracy:.3f} against the best {r.best_accuracy:.3f} "
                     f"(`{r.best_run}`): choosing by RankMe loses {100 * r.accuracy_lost:.1f} points.")
    return lines


def section(table_markdown: str, groups: pd.DataFrame) -> list[str]:
    return [
        "### RankMe within groups",
        "",
        "Garrido et al. claim RankMe ranks the hyperparameters of one method under one augmentation pipeline. "
        "Pooled over policies (above), the correlation mostly measures the policy. Here each group is one method "
        f"and one policy, across {ACROSS}: Spearman's ρ within the group, and what choosing the run with the "
        "highest RankMe costs against choosing by the probe.",
        "",
        table_markdown,
        *answers(groups),
        "",
    ]
