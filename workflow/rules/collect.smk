# The serial scanner: one row per run of the study into metrics.parquet.
rule collect:
    input:
        expand(f"{RUN_DIR}/summary.parquet", run_id=RUN_IDS),
    output:
        f"{RESULTS}/metrics.parquet",
    log:
        f"{RESULTS}/logs/collect.log",
    localrule: True
    shell:
        "dataworth collect --out {output} {input} > {log} 2>&1"
