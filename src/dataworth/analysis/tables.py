"""Paper tables from fits.parquet and exchange_rates.parquet, in Markdown and LaTeX (booktabs).

A table is built once as plain text cells (`Table`) and rendered twice, so the Markdown in the
report and the LaTeX for the paper always show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dataworth.analysis.curves import GROUP_KEY, REFERENCE_POLICY

METRIC_TITLES = {
    "test_accuracy": "in-distribution test accuracy",
    "ood_accuracy": "out-of-distribution accuracy",
    "probe_test_accuracy": "linear-probe test accuracy",
    "probe_ood_accuracy": "linear-probe out-of-distribution accuracy",
    "knn_test_accuracy": "k-NN test accuracy",
    "knn_ood_accuracy": "k-NN out-of-distribution accuracy",
}
BEYOND = "beyond"  # the cell of a point where f_aug(n) is at or beyond b_ref
EXTRAPOLATED_MARK = "†"
# issue 19 A: rates from flagged fits (asymptote_undetermined, poor_fit) keep their numbers, marked
# by side; past an undetermined b_ref there is no number and no claim.
FLAG_MARKS = {"reference_undetermined": "‡", "augmented_undetermined": "§", "both_undetermined": "‡§"}
PAST_UNDETERMINED = "past b_ref"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    align: str  # one letter per column: l or r
    notes: list[str] = field(default_factory=list)
    latex_header: list[str] | None = None  # where a header needs math in LaTeX


def metric_title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric.replace("_", " "))


def setting_label(row) -> str:
    return f"{row['dataset']}, {row['model']} w{row['width']}, {row['method']}"


def _number(x: float, spec: str) -> str:
    return "–" if pd.isna(x) else format(x, spec)


def _with_interval(value, low, high, spec: str, open_end: str = BEYOND) -> str:
    text = _number(value, spec)
    if pd.isna(low) and pd.isna(high):
        return text
    return f"{text} [{_number(low, spec)}, {open_end if pd.isna(high) else _number(high, spec)}]"


def policy_order(policies, reference: str = REFERENCE_POLICY) -> list[str]:
    return sorted(set(policies), key=lambda p: (p != reference, p))


def _sorted_fits(fits: pd.DataFrame) -> pd.DataFrame:
    """By setting, then metric in the order fitted (test before ood), then policy (reference first)."""
    policies = {p: i for i, p in enumerate(policy_order(fits["augmentation"]))}
    metrics = {m: i for i, m in enumerate(dict.fromkeys(fits["metric"]))}
    ordered = fits.assign(_metric=fits["metric"].map(metrics), _policy=fits["augmentation"].map(policies))
    return ordered.sort_values([*GROUP_KEY, "_metric", "_policy"], kind="stable")


def table_of_fits(fits: pd.DataFrame) -> Table:
    """One row per curve: the law's parameters with their 95% intervals, fit quality and status."""
    several_settings = fits[list(GROUP_KEY)].drop_duplicates().shape[0] > 1
    header = ["policy", "metric", "b (asymptote)", "b profile interval", "c (exponent)", "a", "R²", "runs", "left out",
              "status"]
    latex = ["policy", "metric", "$b$ (asymptote)", "$b$ profile interval", "$c$ (exponent)", "$a$", "$R^2$", "runs",
             "left out", "status"]
    rows = []
    for _, fit in _sorted_fits(fits).iterrows():
        row = [fit["augmentation"], fit["metric"],
               _with_interval(fit["b"], fit["b_low"], fit["b_high"], ".3f"),
               _profile_interval(fit),
               _with_interval(fit["c"], fit["c_low"], fit["c_high"], ".2f"),
               _with_interval(fit["a"], fit["a_low"], fit["a_high"], ".3g"),
               _number(fit["r2"], ".3f"), str(fit["n_runs"]), str(fit["n_excluded"]), fit["status"]]
        rows.append(([setting_label(fit)] if several_settings else []) + row)
    if several_settings:
        header, latex = ["setting", *header], ["setting", *latex]
    return Table(
        header=header, latex_header=latex, rows=rows,
        align=("l" if several_settings else "") + "llrrrrrrrl",
        notes=["f(n) = a n^(-c) + b fitted by bounded least squares to every run; [95% bootstrap interval over seeds].",
               "b profile interval: 95% profile-likelihood interval of b (F criterion); \"bound\" where it reaches "
               "a bound of b, so the data do not determine the asymptote (status asymptote_undetermined).",
               "left out: runs not ok (diverged) or without the metric. Parameters exist for status ok, "
               "asymptote_undetermined and poor_fit."],
    )


def _profile_interval(fit) -> str:
    low, high = fit.get("b_profile_low"), fit.get("b_profile_high")
    if pd.isna(low) and pd.isna(high):
        return "–"
    reaches = fit.get("b_profile_reaches_bound")
    reaches = "" if pd.isna(reaches) else str(reaches)
    low_text = _number(low, ".3f") + (" (bound)" if reaches in ("low", "both") else "")
    high_text = _number(high, ".3f") + (" (bound)" if reaches in ("high", "both") else "")
    return f"[{low_text}, {high_text}]"


def table_of_exchange_rates(rates: pd.DataFrame, metric: str, quantity: str = "ratio") -> Table:
    """Policies by study size for one metric: the ratio (n + v)/n, or the extra samples v(n)."""
    if quantity not in ("ratio", "extra_samples"):
        raise ValueError(f"quantity {quantity!r}: must be ratio or extra_samples")
    rows_at_sizes = rates[(rates["metric"] == metric) & (rates["grid"] == "study")]
    sizes = sorted(rows_at_sizes["n"].unique())
    several_settings = rows_at_sizes[list(GROUP_KEY)].drop_duplicates().shape[0] > 1
    spec = ".2f" if quantity == "ratio" else ",.0f"
    rows = []
    for (*_, policy), cells in rows_at_sizes.groupby([*GROUP_KEY, "augmentation"], sort=True):
        by_size = {row["n"]: row for _, row in cells.iterrows()}
        row = [policy] + [_exchange_cell(by_size.get(n), quantity, spec) for n in sizes]
        rows.append(([setting_label(cells.iloc[0])] if several_settings else []) + row)
    header = ["policy"] + [f"n = {n:g}" for n in sizes]
    if several_settings:
        header = ["setting", *header]
    what = ("(n + v(n)) / n: how many times the real data the reference needs to match the augmentation"
            if quantity == "ratio" else "v(n): extra real samples the augmentation is worth at n real samples")
    return Table(
        header=header, rows=rows, align="l" * (1 + several_settings) + "r" * len(sizes),
        notes=[f"{what} ({metric_title(metric)}); [95% bootstrap interval].",
               f"{BEYOND}: f_aug(n) is at or beyond the reference's asymptote b_ref: worth more than any amount of real data.",
               f"{EXTRAPOLATED_MARK}: the equivalent real-data size lies outside the sizes the reference was fitted on.",
               "‡: the reference's fit, §: the augmented curve's fit is asymptote_undetermined or poor_fit: the number "
               f"is kept but not measured; {PAST_UNDETERMINED} ‡: f_aug(n) is past an undetermined b_ref (no claim)."],
    )


def _exchange_cell(row, quantity: str, spec: str) -> str:
    if row is None:
        return "–"
    if row["status"] == "beyond_reference_asymptote":
        return BEYOND
    mark = FLAG_MARKS.get(row["status"], "")
    if row["status"] != "ok" and not mark:
        return row["status"].replace("_", " ")
    if mark and pd.isna(row[quantity]):  # past b_ref: a claim only where b_ref is determined
        claimed = pd.notna(row["beyond_asymptote"]) and bool(row["beyond_asymptote"])
        return f"{BEYOND if claimed else PAST_UNDETERMINED} {mark}"
    # an interval's open end is past b_ref: "beyond" only where b_ref is determined
    open_end = PAST_UNDETERMINED if row["status"] in ("reference_undetermined", "both_undetermined") else BEYOND
    text = _with_interval(row[quantity], row[f"{quantity}_low"], row[f"{quantity}_high"], spec, open_end)
    return text + (f" {EXTRAPOLATED_MARK}" if row["extrapolated"] else "") + (f" {mark}" if mark else "")


def to_markdown(table: Table) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    separator = "|" + "|".join("---:" if a == "r" else "---" for a in table.align) + "|"
    lines = [line(table.header), separator, *(line(r) for r in table.rows)]
    if table.notes:
        lines += ["", *(f"*{note}*  " for note in table.notes)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                   "–": "--", "†": r"$^\dagger$", "²": r"$^2$",
                   "‡": r"$^\ddagger$", "§": r"\S{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(table: Table) -> str:
    """A booktabs tabular, ready to \\input into a table environment (needs \\usepackage{booktabs})."""
    header = table.latex_header or [latex_escape(h) for h in table.header]
    lines = [f"% {note}" for note in table.notes]
    lines += [f"\\begin{{tabular}}{{{table.align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
