# The serial scanner: one row per run of the study into metrics.parquet, its summary joined with
# the evaluations of its representation the study asks for (RankMe; probe and k-NN). The eval
# param makes a re-evaluation that was interrupted before this step still refresh metrics.parquet.
rule collect:
    input:
        summaries=expand(f"{RUN_DIR}/summary.parquet", run_id=RUN_IDS),
        evaluations=[f"{RESULTS}/runs/{run['run_id']}/{name}.parquet" for run in STUDY.runs for name in STUDY.evaluations(run)],
    output:
        f"{RESULTS}/metrics.parquet",
    params:
        study=STUDY_JSON,
        eval=json.dumps(STUDY.spec.eval.model_dump()),
    log:
        f"{RESULTS}/logs/collect.log",
    localrule: True
    shell:
        # The study, not {input}, names the files: thousands of paths would overflow the command line.
        "dataworth collect {params.study} --out {output} > {log} 2>&1"
