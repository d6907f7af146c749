"""The report from a metrics.parquet: Parquet outputs, tables (Markdown, LaTeX booktabs), figures, CLI."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import BIN
from dataworth.analysis.laws import power_law
from dataworth.analysis.report import build_report, report_from_file
from dataworth.tracking.schemas import EXCHANGE_RATES, FITS, METRICS, read_parquet, write_parquet

SIZES = (125, 250, 500, 1000, 2000, 4000)
# (a, b, c) per policy for test_accuracy and ood_accuracy; `strong` passes the reference's asymptote.
LAWS = {
    "none": ((-4.0, 0.95, 0.5), (-4.0, 0.80, 0.45)),
    "shift": ((-2.0, 0.96, 0.45), (-3.0, 0.82, 0.45)),
    "strong": ((-1.0, 0.975, 0.5), (-1.5, 0.85, 0.5)),
}


def synthetic_metrics(laws=LAWS, sizes=SIZES, seeds=(0, 1, 2), noise=0.003, seed=0, **columns) -> pd.DataFrame:
    """A metrics table (METRICS schema) of runs whose accuracies follow known laws plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for policy, (test_law, ood_law) in laws.items():
        for n in sizes:
            for s in seeds:
                rows.append({
                    "run_id": f"{policy[:4]}{n:05d}{s:03d}", "study": "synthetic", "dataset": "d", "method": "supervised",
                    "n_train": n, "augmentation": policy, "model": "cnn1d", "width": 8, "seed": s, "steps": 10,
                    "batch_size": 32, "optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0, "label_smoothing": 0.0,
                    "status": "ok", "steps_completed": 10, "train_loss": 0.1, "train_accuracy": 1.0, "test_loss": 0.3,
                    "test_accuracy": power_law(n, *test_law) + rng.normal(0, noise),
                    "ood_loss": 0.6, "ood_accuracy": power_law(n, *ood_law) + rng.normal(0, noise),
                    "wall_seconds": 1.0, "compute_seconds": 1.0, "eval_seconds": 0.1, "device": "cpu", "data_sha256": "0",
                    **columns,
                })
    return pd.DataFrame(rows, columns=METRICS.names)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    metrics = synthetic_metrics()
    metrics.loc[0, ["status", "test_accuracy", "ood_accuracy"]] = ["diverged", np.nan, np.nan]
    out = tmp_path_factory.mktemp("study")
    write_parquet(metrics, METRICS, out / "metrics.parquet")
    return report_from_file(out / "metrics.parquet", n_bootstrap=60)


def test_fits_and_exchange_rates_are_written_in_their_schemas(report):
    out = report.folder.parent
    fits = read_parquet(out / "fits.parquet", FITS)
    assert len(fits) == 6 and (fits["status"] == "ok").all()
    assert fits["n_excluded"].tolist().count(1) == 2  # the diverged run, in both metric curves of `none`
    none_test = fits.query("augmentation == 'none' and metric == 'test_accuracy'").iloc[0]
    assert none_test["b_low"] <= 0.95 <= none_test["b_high"] and "1 run(s) left out" in none_test["message"]
    rates = read_parquet(out / "exchange_rates.parquet", EXCHANGE_RATES)
    assert set(rates["augmentation"]) == {"shift", "strong"} and set(rates["metric"]) == {"test_accuracy", "ood_accuracy"}
    strong = rates.query("augmentation == 'strong' and metric == 'test_accuracy' and grid == 'study'")
    assert strong["beyond_asymptote"].iloc[-1] and strong["status"].iloc[-1] == "beyond_reference_asymptote"
    ok = rates[rates["status"] == "ok"]
    assert (ok["extra_samples_low"] <= ok["extra_samples"]).all() and (ok["ratio"] > 0).all()


def test_figures_are_non_empty_pngs(report):
    pngs = sorted(report.folder.glob("*.png"))
    assert [p.name.split("_")[0] for p in pngs] == ["exchange", "residuals", "scaling"]
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, png


def test_markdown_tables_list_every_policy_and_the_report_links_every_file(report):
    fits_md = (report.folder / "fits.md").read_text()
    for policy in LAWS:
        assert f"| {policy} | test_accuracy |" in fits_md and f"| {policy} | ood_accuracy |" in fits_md
    ratio_md = (report.folder / "exchange_ratio_test_accuracy.md").read_text()
    assert "| shift |" in ratio_md and "| strong |" in ratio_md and "beyond" in ratio_md
    assert all(f"n = {n}" in ratio_md for n in SIZES)
    text = (report.folder / "report.md").read_text()
    for name in report.files[1:]:
        assert (report.folder / name).stat().st_size > 0 and (f"({name})" in text or name == "report.html")
    assert "| none | test_accuracy |" in text and "`beyond_reference_asymptote`" in text


def test_report_html_is_report_md_with_every_figure_embedded(report):
    """Issue 20 item 5: one self-contained page (MLflow shows it; report.md's figures are text there)."""
    import base64
    from html.parser import HTMLParser

    class References(HTMLParser):
        def __init__(self):
            super().__init__()
            self.srcs, self.hrefs, self.tables = [], [], 0

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.srcs += [attrs["src"]] if "src" in attrs else []
            self.hrefs += [attrs["href"]] if "href" in attrs else []
            self.tables += tag == "table"

    page = (report.folder / "report.html").read_text()
    parsed = References()
    parsed.feed(page)
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (report.folder / "report.md").read_text())
    assert len(figures) == 3 and len(parsed.srcs) == len(figures)  # scaling, residuals, exchange of the one group
    for name, src in zip(figures, parsed.srcs, strict=True):
        media, data = src.split(",", 1)
        assert media == "data:image/png;base64" and base64.b64decode(data) == (report.folder / name).read_bytes()
    assert all(href.startswith(("http", "#")) for href in parsed.hrefs)  # no file beside it is referenced
    assert parsed.tables >= 3 and "<td>" in page


def check_booktabs(tex: str) -> None:
    lines = [line for line in tex.splitlines() if line and not line.startswith("%")]
    assert lines[0].startswith(r"\begin{tabular}{") and lines[-1] == r"\end{tabular}"
    assert [lines[1], lines[3], lines[-2]] == [r"\toprule", r"\midrule", r"\bottomrule"]
    columns = len(re.match(r"\\begin\{tabular\}\{([lrc]+)\}", lines[0]).group(1))
    for row in [lines[2], *lines[4:-2]]:
        assert row.endswith(r"\\") and len(re.split(r"(?<!\\)&", row)) == columns, row
    body = "\n".join(lines)
    assert body.count("{") == body.count("}") and body.count("$") % 2 == 0
    assert not re.search(r"(?<!\\)[_%#]", body.replace("$R^2$", "").replace("$^\\dagger$", ""))


def test_latex_tables_are_booktabs_fragments(report):
    texs = sorted(report.folder.glob("*.tex"))
    assert len(texs) == 5  # fits, and ratio + samples per metric
    for tex in texs:
        check_booktabs(tex.read_text())
    assert r"shift\_scale" not in (report.folder / "fits.tex").read_text()  # only policies of this study
    assert r"ood\_accuracy" in (report.folder / "fits.tex").read_text()


def test_degenerate_study_gives_statuses_and_still_a_report(tmp_path):
    laws = {"none": ((-4.0, 0.95, 0.5), (-4.0, 0.8, 0.45)), "shift": ((-2.0, 0.96, 0.45), (-3.0, 0.82, 0.45))}
    one_size = synthetic_metrics(laws, sizes=(500,))
    flat = synthetic_metrics({"none": laws["none"]}, seed=1, model="mlp")
    flat["test_accuracy"] = 0.25
    lonely = synthetic_metrics({"shift": laws["shift"]}, seed=2, model="resnet18")
    metrics = pd.concat([one_size, flat, lonely], ignore_index=True)
    result = build_report(metrics, tmp_path, n_bootstrap=20)
    fits = result.fits.set_index(["model", "augmentation", "metric"])["status"].to_dict()
    assert fits[("cnn1d", "none", "test_accuracy")] == "too_few_sizes"
    assert fits[("mlp", "none", "test_accuracy")] == "flat" and fits[("mlp", "none", "ood_accuracy")] == "ok"
    assert fits[("resnet18", "shift", "test_accuracy")] == "ok"
    rates = result.exchange_rates.groupby("model")["status"].unique().map(list).to_dict()
    assert rates == {"cnn1d": ["reference_not_fitted"], "resnet18": ["no_reference"]}
    fits_md = (result.folder / "fits.md").read_text()
    assert "| setting |" in fits_md and "too_few_sizes" in fits_md and "flat" in fits_md
    assert "no reference" in (result.folder / "exchange_ratio_test_accuracy.md").read_text()
    assert len(list(result.folder.glob("*.png"))) == 9  # three figures per setting


def test_rebuilding_replaces_the_report_folder_and_is_reproducible(tmp_path):
    metrics = synthetic_metrics()
    first = build_report(metrics, tmp_path, n_bootstrap=30, metric_names=["test_accuracy"])
    (first.folder / "stale.png").write_bytes(b"old")
    second = build_report(metrics, tmp_path, n_bootstrap=30, metric_names=["test_accuracy"])
    assert not (second.folder / "stale.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    pd.testing.assert_frame_equal(first.fits, second.fits)
    assert set(second.fits["metric"]) == {"test_accuracy"}


def dataworth(*args):
    return subprocess.run([str(BIN / "dataworth"), *args], capture_output=True, text=True, timeout=120)


def test_cli_rebuilds_the_report_from_metrics_and_names_bad_input(tmp_path):
    write_parquet(synthetic_metrics(), METRICS, tmp_path / "metrics.parquet")
    proc = dataworth("report", "--metrics", str(tmp_path / "metrics.parquet"), "--out-dir", str(tmp_path / "out"),
                     "--bootstrap", "20")
    assert proc.returncode == 0, proc.stderr
    assert "fitted 6 curves: 6 ok" in proc.stdout
    assert (tmp_path / "out" / "report" / "report.md").exists() and (tmp_path / "out" / "fits.parquet").exists()

    bad = dataworth("report", "--metrics", str(tmp_path / "metrics.parquet"), "--metric", "probe_accuracy")
    assert bad.returncode == 2 and "'probe_accuracy': not a column" in bad.stderr and "Traceback" not in bad.stderr
    missing = dataworth("report", "--metrics", str(tmp_path / "nope.parquet"))
    assert missing.returncode == 2 and "--metrics" in missing.stderr and "Traceback" not in missing.stderr
