# The serial scanner: one row per run of the study into metrics.parquet. The eval param makes a
# re-evaluation that was interrupted before this step still refresh metrics.parquet.
rule collect:
    input:
        expand(f"{RUN_DIR}/summary.parquet", run_id=RUN_IDS),
    output:
        f"{RESULTS}/metrics.parquet",
    params:
        eval=json.dumps(STUDY.spec.eval.model_dump()),
    log:
        f"{RESULTS}/logs/collect.log",
    localrule: True
    shell:
        "dataworth collect --out {output} {input} > {log} 2>&1"
