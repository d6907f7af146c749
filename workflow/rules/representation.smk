# Evaluations of a trained run's representation, every method: linear probe and k-NN on frozen
# encoder features, RankMe of features and projector outputs. They read model.pt only, so a new
# probe or metric never retrains an encoder. Each has the `eval` settings it reads as params:
# changing them reruns just that evaluation (Snakemake's params trigger). One job per pack, one
# Parquet file per run (probe.parquet, knn.parquet, rankme.parquet in its run directory).
rule probe:
    input:
        trained=f"{PACK_DIR}/train.done",
        data=DATA,
    output:
        f"{PACK_DIR}/probe.done",
    params:
        study=STUDY_JSON,
        runs=RUNS,
        eval=STUDY.eval_params("probe"),
    log:
        f"{PACK_DIR}/logs/probe.log",
    benchmark:
        f"{PACK_DIR}/logs/probe.benchmark.tsv"
    threads: 1
    resources:
        **SLURM_RESOURCES["evaluate"],
    # The marker records the eval settings used (Packs.marker_text: checked without Snakemake's records).
    shell:
        "dataworth probe --study {params.study} --pack {wildcards.pack_id} --runs {params.runs} "
        "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1 "
        "&& echo {params.eval:q} > {output}"


rule knn:
    input:
        trained=f"{PACK_DIR}/train.done",
        data=DATA,
    output:
        f"{PACK_DIR}/knn.done",
    params:
        study=STUDY_JSON,
        runs=RUNS,
        eval=STUDY.eval_params("knn"),
    log:
        f"{PACK_DIR}/logs/knn.log",
    benchmark:
        f"{PACK_DIR}/logs/knn.benchmark.tsv"
    threads: 1
    resources:
        **SLURM_RESOURCES["evaluate"],
    # The marker records the eval settings used (Packs.marker_text: checked without Snakemake's records).
    shell:
        "dataworth knn --study {params.study} --pack {wildcards.pack_id} --runs {params.runs} "
        "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1 "
        "&& echo {params.eval:q} > {output}"


rule rankme:
    input:
        trained=f"{PACK_DIR}/train.done",
        data=DATA,
    output:
        f"{PACK_DIR}/rankme.done",
    params:
        study=STUDY_JSON,
        runs=RUNS,
        eval=STUDY.eval_params("rankme"),
    log:
        f"{PACK_DIR}/logs/rankme.log",
    benchmark:
        f"{PACK_DIR}/logs/rankme.benchmark.tsv"
    threads: 1
    resources:
        **SLURM_RESOURCES["evaluate"],
    # The marker records the eval settings used (Packs.marker_text: checked without Snakemake's records).
    shell:
        "dataworth rankme --study {params.study} --pack {wildcards.pack_id} --runs {params.runs} "
        "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1 "
        "&& echo {params.eval:q} > {output}"
