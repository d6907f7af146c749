# The analysis of the study, from metrics.parquet alone (no training): scaling-law fits,
# exchange rates, and the paper-style report (tables .md/.tex, figures .png, report.md).
# `snakemake report` builds it; it is also part of `all`.
rule report:
    input:
        str(STUDY_DIR.metrics),
    output:
        fits=str(STUDY_DIR.fits),
        exchange_rates=str(STUDY_DIR.exchange_rates),
        reference=str(STUDY_DIR.reference),
        report=directory(str(STUDY_DIR.report)),
    params:
        out_dir=RESULTS,
        # issue 18 item 4: editing the published values rebuilds the report (study.json is no input:
        # a pulled study's would look newer than its report)
        reference=repr(STUDY.spec.reference),
    log:
        str(STUDY_DIR.logs / "report.log"),
    localrule: True
    shell:
        "dataworth report --metrics {input} --out-dir {params.out_dir} > {log} 2>&1"
