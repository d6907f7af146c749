# The analysis of the study, from metrics.parquet alone (no training): scaling-law fits,
# exchange rates, and the paper-style report (tables .md/.tex, figures .png, report.md).
# `snakemake report` builds it; it is also part of `all`.
rule report:
    input:
        str(STUDY_DIR.metrics),
    output:
        fits=str(STUDY_DIR.fits),
        exchange_rates=str(STUDY_DIR.exchange_rates),
        report=directory(str(STUDY_DIR.report)),
    params:
        out_dir=RESULTS,
    log:
        str(STUDY_DIR.logs / "report.log"),
    localrule: True
    shell:
        "dataworth report --metrics {input} --out-dir {params.out_dir} > {log} 2>&1"
