# The analysis of the study, from metrics.parquet alone (no training): scaling-law fits,
# exchange rates, and the paper-style report (tables .md/.tex, figures .png, report.md).
# `snakemake report` builds it; it is also part of `all`.
rule report:
    input:
        f"{RESULTS}/metrics.parquet",
    output:
        fits=f"{RESULTS}/fits.parquet",
        exchange_rates=f"{RESULTS}/exchange_rates.parquet",
        report=directory(f"{RESULTS}/report"),
    params:
        out_dir=RESULTS,
    log:
        f"{RESULTS}/logs/report.log",
    localrule: True
    shell:
        "dataworth report --metrics {input} --out-dir {params.out_dir} > {log} 2>&1"
