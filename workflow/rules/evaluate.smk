# Evaluate a trained run on its training subset, the test set and the OOD set (the trained head;
# null for self-supervised runs). The `eval` param holds the eval settings this rule reads, so
# that changing them reruns it (Snakemake's params trigger), never training. summary.parquet
# marks the run complete.
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
        eval=STUDY.eval_params("evaluate"),
    log:
        f"{RUN_DIR}/logs/evaluate.log",
    benchmark:
        f"{RUN_DIR}/logs/evaluate.benchmark.tsv"
    threads: 1
    resources:
        **SLURM_RESOURCES["evaluate"],
    shell:
        "dataworth evaluate --study {params.study} --run-id {wildcards.run_id} --run-dir {params.run_dir} "
        "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1"
