"""`dataworth report`: fits, exchange rates, tables and figures from an existing metrics.parquet.

Registered on the CLI by `register`; heavy imports (scipy, matplotlib) stay inside the command.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def cmd_report(args) -> None:
    if not Path(args.metrics).is_file():  # before the heavy imports: a typo fails at once
        _fail(f"--metrics: {args.metrics}: no such file (run the study, or `dvc pull`, first)")
    from dataworth.analysis import laws
    from dataworth.analysis.curves import AnalysisInputError
    from dataworth.analysis.report import report_from_file
    from dataworth.tracking.schemas import SchemaError

    start = time.perf_counter()
    try:
        report = report_from_file(args.metrics, args.out_dir, metric_names=args.metric, reference=args.reference,
                                  n_bootstrap=args.bootstrap, seed=args.seed)
    except (AnalysisInputError, SchemaError, ValueError) as exc:
        _fail(f"{args.metrics}: {exc}")

    fits = report.fits
    print(f"fitted {len(fits)} curves: {_counts(fits['status'])}")
    for row in fits.itertuples():
        law = f"b={row.b:.4f} c={row.c:.3f} R2={row.r2:.3f}" if row.status in laws.FITTED_STATUSES else row.message or ""
        print(f"  {row.augmentation:<20} {row.metric:<16} {row.status:<22} {law}")
    at_sizes = report.exchange_rates[report.exchange_rates["grid"] == "study"]
    print(f"exchange rates at the study's sizes: {_counts(at_sizes['status'])}")
    _print_reference(report.folder.parent / "reference.parquet")  # issue 18 item 4
    print(f"wrote {report.folder.parent / 'fits.parquet'}, {report.folder.parent / 'exchange_rates.parquet'} and "
          f"{len(report.files)} files in {report.folder}/ (report.md) in {time.perf_counter() - start:.1f}s")


def _print_reference(path: Path) -> None:
    """The published-vs-reproduced verdicts, one line per row (nothing without a reference block)."""
    from dataworth.tracking.schemas import REFERENCE, read_parquet

    table = read_parquet(path, REFERENCE)
    if table.empty:
        return
    print(f"published vs reproduced: {_counts(table['verdict'])}")
    for row in table.itertuples():
        ours = f"{row.mean:.4f}" if row.seeds_used else "–"
        print(f"  {row.label:<24} {row.metric:<16} published {row.published:.4f} ours {ours} ({row.seeds_used} seeds) "
              f"{row.verdict}")


def _counts(statuses) -> str:
    return ", ".join(f"{n} {s}" for s, n in statuses.value_counts().items()) or "none"


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="fit the laws, compute exchange rates and write the report from a metrics.parquet (no training)")
    p.add_argument("--metrics", required=True, help="the study's metrics.parquet (results/<study>/metrics.parquet)")
    p.add_argument("--out-dir", help="where fits.parquet, exchange_rates.parquet and report/ go "
                                     "(default: the metrics file's folder)")
    p.add_argument("--metric", action="append",
                   help="a metrics column to fit; repeat for several (default: every *_accuracy column but train_accuracy)")
    p.add_argument("--reference", default="none", help="the policy exchange rates are measured against (default: none)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples over seeds (default: 200; 0: no intervals)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default: 0)")
    p.set_defaults(func=cmd_report)
