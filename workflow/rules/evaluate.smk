# Evaluate a pack's trained runs on their training subsets, the test set and the OOD set (the
# trained head; null for self-supervised runs), one summary.parquet per run, which marks the run
# complete. The `eval` param holds the eval settings this rule reads, so that changing them
# reruns it (Snakemake's params trigger), never training.
rule evaluate:
    input:
        trained=f"{PACK_DIR}/train.done",
        data=DATA,
    output:
        f"{PACK_DIR}/evaluate.done",
    params:
        study=STUDY_JSON,
        runs=RUNS,
        eval=STUDY.eval_params("evaluate"),
    log:
        f"{PACK_DIR}/logs/evaluate.log",
    benchmark:
        f"{PACK_DIR}/logs/evaluate.benchmark.tsv"
    threads: 1
    resources:
        **SLURM_RESOURCES["evaluate"],
    # The marker records the eval settings used (Packs.marker_text: checked without Snakemake's records).
    shell:
        "dataworth evaluate --study {params.study} --pack {wildcards.pack_id} --runs {params.runs} "
        "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1 "
        "&& echo {params.eval:q} > {output}"
