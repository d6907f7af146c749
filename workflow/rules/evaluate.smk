# Evaluate a trained run on its training subset, the test set and the OOD set. The `eval` param
# is there so that changing the study's eval settings reruns this rule (Snakemake's params
# trigger), never training. summary.parquet marks the run complete.
rule evaluate:
    input:
        training=f"{RUN_DIR}/training.parquet",
        model=f"{RUN_DIR}/model.pt",
        data=DATA,
    output:
        f"{RUN_DIR}/summary.parquet",
    params:
        study=STUDY_JSON,
        run_dir=RUN_DIR,
        eval=json.dumps(STUDY.spec.eval.model_dump()),
    log:
        f"{RUN_DIR}/logs/evaluate.log",
    benchmark:
        f"{RUN_DIR}/logs/evaluate.benchmark.tsv"
    threads: 1
    shell:
        "dataworth evaluate --study {params.study} --run-id {wildcards.run_id} --run-dir {params.run_dir} "
        "--data {input.data} --threads {threads} > {log} 2>&1"
