"""The study's analysis from its metrics.parquet, with no training:

    <out>/fits.parquet            the law of every curve                  (schema FITS)
    <out>/exchange_rates.parquet  exchange rates at the sizes + dense grid (schema EXCHANGE_RATES)
    <out>/reference.parquet       the study's published values against ours (schema REFERENCE; no
                                  rows without a `reference:` block in study.json)
    <out>/report/                 report.md, tables (.md, .tex), figures (.png); with RankMe and
                                  probe columns also RankMe against probe accuracy; for image
                                  studies (study.json beside metrics.parquet) one augment-preview
                                  grid per policy (augment_<policy>.png)

The report folder is built aside and swapped in whole, so it never mixes two builds and never
keeps a figure of a policy or metric that is gone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dataworth.analysis import (across_settings, asymptote, exchange, figures, laws, rankme_groups, rankme_vs_probe,
                                tables)
from dataworth.analysis import reference as published
from dataworth.analysis.curves import GROUP_KEY, REFERENCE_POLICY, curves_from_metrics
from dataworth.analysis.fits import CurveFit, fit_curves, fits_table
from dataworth.files import atomic_folder, write_text_atomic
from dataworth.tracking.schemas import EXCHANGE_RATES, FITS, METRICS, REFERENCE, read_parquet, write_parquet


@dataclass
class Report:
    fits: pd.DataFrame
    exchange_rates: pd.DataFrame
    folder: Path
    files: list[str]  # inside folder


def report_from_file(metrics_path: str | Path, out_dir: str | Path | None = None, **options) -> Report:
    metrics_path = Path(metrics_path)
    metrics = read_parquet(metrics_path, METRICS)
    # --- issue 17 item 6: the study beside its metrics (results/<study>/study.json) gives the previews
    study_json = metrics_path.parent / "study.json"
    if "study_spec" not in options and study_json.is_file():
        options["study_spec"] = _study_spec(study_json)
    # ---
    return build_report(metrics, out_dir if out_dir is not None else metrics_path.parent, source=str(metrics_path), **options)


def _study_spec(path: Path):
    """The validated spec of a written study.json (no cross-checks: they would prepare the data)."""
    import json

    from dataworth.study import StudySpec

    return StudySpec.model_validate(json.loads(path.read_text()))


def build_report(metrics: pd.DataFrame, out_dir: str | Path, *, metric_names: list[str] | None = None,
                 reference: str = REFERENCE_POLICY, n_bootstrap: int = 200, seed: int = 0,
                 source: str = "metrics.parquet", study_spec=None) -> Report:
    if n_bootstrap < 0:
        raise ValueError(f"bootstrap: {n_bootstrap} resamples; must be 0 or more")
    out_dir = Path(out_dir)
    curve_fits = fit_curves(curves_from_metrics(metrics, metric_names), n_bootstrap=n_bootstrap, seed=seed)
    fits = fits_table(curve_fits)
    rates = exchange.exchange_rates(curve_fits, reference=reference)
    write_parquet(fits, FITS, out_dir / "fits.parquet")
    write_parquet(rates, EXCHANGE_RATES, out_dir / "exchange_rates.parquet")
    # Re-read what was written: the tables show exactly the stored numbers and types.
    fits = read_parquet(out_dir / "fits.parquet", FITS)
    rates = read_parquet(out_dir / "exchange_rates.parquet", EXCHANGE_RATES)
    # --- issue 18 item 4: published values against ours
    reference_block = getattr(study_spec, "reference", None)
    compared = published.reference_table(metrics, reference_block) if reference_block else published.empty_table()
    write_parquet(compared, REFERENCE, out_dir / "reference.parquet")
    compared = read_parquet(out_dir / "reference.parquet", REFERENCE)
    # ---

    with atomic_folder(out_dir / "report") as folder:
        files = _write_report(folder, metrics, curve_fits, fits, rates, reference=reference,
                              n_bootstrap=n_bootstrap, source=source, study_spec=study_spec,
                              published_section=published.section(compared))
    return Report(fits=fits, exchange_rates=rates, folder=out_dir / "report", files=files)


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", "_".join(str(p) for p in parts)).strip("-")


def _write_report(folder: Path, metrics: pd.DataFrame, curve_fits: list[CurveFit], fits: pd.DataFrame,
                  rates: pd.DataFrame, *, reference: str, n_bootstrap: int, source: str, study_spec=None,
                  published_section: list[str] = ()) -> list[str]:
    files: list[str] = []

    def save_table(name: str, table: tables.Table) -> str:
        markdown = tables.to_markdown(table)
        write_text_atomic(folder / f"{name}.md", markdown)
        write_text_atomic(folder / f"{name}.tex", tables.to_latex(table))
        files.extend([f"{name}.md", f"{name}.tex"])
        return markdown

    fitted = {f.key["metric"] for f in curve_fits}
    metric_names = [m for m in metrics.columns if m in fitted]  # metrics.parquet's order: test before probes
    fits_markdown = save_table("fits", tables.table_of_fits(fits))
    exchange_markdown = {}
    for metric in metric_names:
        exchange_markdown[metric] = (save_table(f"exchange_ratio_{metric}", tables.table_of_exchange_rates(rates, metric, "ratio")),
                                     save_table(f"exchange_samples_{metric}", tables.table_of_exchange_rates(rates, metric, "extra_samples")))

    groups: dict[tuple, list[CurveFit]] = {}
    for fit in curve_fits:
        groups.setdefault(fit.curve.group, []).append(fit)
    figure_files: dict[tuple, dict[str, str]] = {}
    for group, group_fits in groups.items():
        slug = _slug(*group)
        in_group = pd.Series(True, index=rates.index)
        for column, value in zip(GROUP_KEY, group):
            in_group &= rates[column] == value
        names = {"scaling": f"scaling_{slug}.png", "exchange": f"exchange_{slug}.png", "residuals": f"residuals_{slug}.png"}
        group_metrics = list(dict.fromkeys(f.key["metric"] for f in group_fits))  # a method has only some
        figures.scaling_figure(group_fits, folder / names["scaling"], reference)
        figures.exchange_figure(rates[in_group], folder / names["exchange"], group_metrics, reference)
        figures.residuals_figure(group_fits, folder / names["residuals"], reference)
        figure_files[group] = names
        files.extend(names.values())

    # --- issue 18 item 6: exchange rates across model widths and types (fig. 3a/3b)
    across, across_files = across_settings.write(folder, rates, metric_names, reference, save_table)
    files.extend(across_files)
    # ---

    label_free = []
    if rankme_vs_probe.has_data(metrics):
        correlations = rankme_vs_probe.correlations(metrics)
        label_free = rankme_vs_probe.section(save_table(rankme_vs_probe.TABLE, rankme_vs_probe.table(correlations)))
        # --- issue 19 C: RankMe judged within groups (method, policy)
        groups = rankme_groups.within_groups(metrics)
        label_free += rankme_groups.section(save_table(rankme_groups.TABLE, rankme_groups.table(groups, correlations)), groups)
        # ---
        rankme_vs_probe.figure(metrics, correlations, folder / rankme_vs_probe.FIGURE)
        files.append(rankme_vs_probe.FIGURE)

    from dataworth.analysis import mechanisms  # issue 19 part B: the mechanisms beside the exchange rates

    label_free += mechanisms.write_section(metrics, rates, folder, reference, save_table, files)
    previews = _augmentation_previews(folder, study_spec, metrics, reference, files)  # issue 17 item 6

    text = _report_markdown(metrics, fits, rates, fits_markdown, exchange_markdown, figure_files,
                            reference=reference, n_bootstrap=n_bootstrap, source=source, files=files,
                            label_free=across + label_free + previews, published_section=list(published_section))
    write_text_atomic(folder / "report.md", text)
    from dataworth.analysis.report_html import write_report_html  # issue 20 item 5: figures embedded, for MLflow

    return ["report.md", write_report_html(folder, text), *files]


# --- issue 17 item 6: what each policy does to a few training images, for image studies ---
PREVIEW_PREFIX = "augment_"


def _augmentation_previews(folder: Path, spec, metrics: pd.DataFrame, reference: str, files: list[str]) -> list[str]:
    """One augment-preview grid per policy of the report (augment/preview.py), written into the report
    folder; returns the report's section (empty for studies of signals or without their study.json).
    Dataset files missing here (the report rebuilt on another machine) give a note, not a failure."""
    from dataworth.augment.ops import IMAGE

    if spec is None or spec.dataset.modality != IMAGE:
        return []
    from dataworth.augment.preview import write_policy_grids
    from dataworth.data.readers import DataFileError

    policies = [p for p in tables.policy_order(metrics["augmentation"].unique(), reference) if p in spec.augmentations]
    out = ["## Augmentations", "",
           "What each policy does to the first training images: per row an image, then draws of the whole policy, "
           "then each op alone at p = 1 (`dataworth augment-preview` draws the same grids).", ""]
    try:
        write_policy_grids(spec, folder, policies, prefix=PREVIEW_PREFIX)
    except DataFileError as exc:
        return out + [f"Not drawn: the dataset files are not on this machine ({exc}).", ""]
    for policy in policies:
        name = f"{PREVIEW_PREFIX}{policy}.png"
        files.append(name)
        out += [f"### `{policy}`", "", f"![augmentation policy {policy}]({name})", ""]
    return out


# ---


def _report_markdown(metrics, fits, rates, fits_markdown, exchange_markdown, figure_files, *,
                     reference, n_bootstrap, source, files, label_free, published_section=()) -> str:
    studies = ", ".join(f"`{s}`" for s in sorted(metrics["study"].dropna().unique())) or "(unnamed)"
    status_counts = ", ".join(f"{count} {status}" for status, count in metrics["status"].value_counts().items())
    sizes = sorted(metrics["n_train"].unique())
    policies = tables.policy_order(metrics["augmentation"].unique(), reference)
    out = [
        f"# How much is data worth? Study {studies}",
        "",
        f"Built by `dataworth report` from `{source}`: {len(metrics)} runs ({status_counts}); "
        f"sizes n = {', '.join(str(int(s)) for s in sizes)}; policies {', '.join(policies)}; "
        f"reference policy `{reference}`; {n_bootstrap} bootstrap resamples over seeds.",
        "",
        *published_section,  # issue 18 item 4: first, it answers "do we reproduce the paper?"
        "## Scaling laws",
        "",
        "Each curve (dataset, model, width, method, augmentation policy, metric) is fitted with the saturating power "
        "law of Geiping et al. (2022), **f(n) = a·n^(−c) + b**: b is the metric with unlimited real data, c how fast "
        "it is approached. The fit is bounded least squares over every run that finished ok; runs that diverged or "
        "lack the metric are left out and counted. Intervals are 95% percentile intervals of fits to runs "
        "resampled within each size (seeds). Numbers in `fits.parquet`.",
        "",
        fits_markdown,
    ]
    notes = fits[fits["message"].notna()]
    if len(notes):
        out += ["Notes on the fits:", ""]
        out += [f"- {r.augmentation} / {r.metric} ({r.status}): {r.message}" for r in notes.itertuples()]
        out.append("")
    out += asymptote.report_lines(fits)  # issue 19 A
    for group, names in figure_files.items():
        label = " ".join(str(v) for v in group)
        out += [f"![scaling laws, {label}]({names['scaling']})", "",
                f"![residuals, {label}]({names['residuals']})", ""]
    out += [
        "## Exchange rates",
        "",
        "What an augmentation is worth in real samples (Eq. 1 of Geiping et al. 2022): at n real samples, "
        "**v(n) = f_ref^−1(f_aug(n)) − n** extra samples, or the ratio **(n + v(n)) / n**, against the reference "
        f"policy `{reference}` of the same setting and metric. Where f_aug(n) is at or beyond the reference's "
        "asymptote b_ref, the augmentation is worth more than any amount of real data: the tables say *beyond* "
        "(only where b_ref is determined; rates from flagged fits are marked ‡ and §). "
        "Numbers, also on a dense grid of n, in `exchange_rates.parquet`.",
        "",
    ]
    for metric, (ratio_markdown, samples_markdown) in exchange_markdown.items():
        out += [f"### {tables.metric_title(metric).capitalize()} (`{metric}`)", "", "Ratio (n + v) / n:", "",
                ratio_markdown, "Extra real samples v(n):", "", samples_markdown]
    for group, names in figure_files.items():
        out += [f"![exchange rates, {' '.join(str(v) for v in group)}]({names['exchange']})", ""]
    out += label_free
    out += ["## Statuses", "", "Fits:", ""]
    out += [f"- `{status}`: {meaning}" for status, meaning in laws.STATUSES.items()]
    out += ["", "Exchange rates:", ""]
    out += [f"- `{status}`: {meaning}" for status, meaning in exchange.STATUSES.items()]
    out += ["", "## Files", "", "- `../fits.parquet`, `../exchange_rates.parquet`, `../reference.parquet`"]
    out += [f"- [`{name}`]({name})" for name in files]
    return "\n".join(out) + "\n"
