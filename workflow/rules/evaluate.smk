# Evaluate a trained run on its training subset, the test set and the OOD set. A new metric
# reruns this rule, never training. summary.parquet marks the run complete.
rule evaluate:
    input:
        training=f"{RUN_DIR}/training.parquet",
        model=f"{RUN_DIR}/model.pt",
        data=DATA,
    output:
        f"{RUN_DIR}/summary.parquet",
    params:
        run_dir=RUN_DIR,
    log:
        f"{RUN_DIR}/logs/evaluate.log",
    benchmark:
        f"{RUN_DIR}/logs/evaluate.benchmark.tsv"
    threads: 1
    shell:
        "dataworth evaluate --run-dir {params.run_dir} --data {input.data} --threads {threads} > {log} 2>&1"
