# Evaluations of a trained run's representation, every method: linear probe and k-NN on frozen
# encoder features, RankMe of features and projector outputs. They read model.pt only, so a new
# probe or metric never retrains an encoder. Each has the `eval` settings it reads as params:
# changing them reruns just that evaluation (Snakemake's params trigger).
rule probe:
    input:
        training=f"{RUN_DIR}/training.parquet",
        model=f"{RUN_DIR}/model.pt",
        data=DATA,
    output:
        f"{RUN_DIR}/probe.parquet",
    params:
        study=STUDY_JSON,
        run_dir=RUN_DIR,
        eval=STUDY.eval_params("probe"),
    log:
        f"{RUN_DIR}/logs/probe.log",
    benchmark:
        f"{RUN_DIR}/logs/probe.benchmark.tsv"
    threads: 1
    resources:
        **SLURM_RESOURCES["evaluate"],
    shell:
        "dataworth probe --study {params.study} --run-id {wildcards.run_id} --run-dir {params.run_dir} "
        "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1"


rule knn:
    input:
        training=f"{RUN_DIR}/training.parquet",
        model=f"{RUN_DIR}/model.pt",
        data=DATA,
    output:
        f"{RUN_DIR}/knn.parquet",
    params:
        study=STUDY_JSON,
        run_dir=RUN_DIR,
        eval=STUDY.eval_params("knn"),
    log:
        f"{RUN_DIR}/logs/knn.log",
    benchmark:
        f"{RUN_DIR}/logs/knn.benchmark.tsv"
    threads: 1
    resources:
        **SLURM_RESOURCES["evaluate"],
    shell:
        "dataworth knn --study {params.study} --run-id {wildcards.run_id} --run-dir {params.run_dir} "
        "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1"


rule rankme:
    input:
        training=f"{RUN_DIR}/training.parquet",
        model=f"{RUN_DIR}/model.pt",
        data=DATA,
    output:
        f"{RUN_DIR}/rankme.parquet",
    params:
        study=STUDY_JSON,
        run_dir=RUN_DIR,
        eval=STUDY.eval_params("rankme"),
    log:
        f"{RUN_DIR}/logs/rankme.log",
    benchmark:
        f"{RUN_DIR}/logs/rankme.benchmark.tsv"
    threads: 1
    resources:
        **SLURM_RESOURCES["evaluate"],
    shell:
        "dataworth rankme --study {params.study} --run-id {wildcards.run_id} --run-dir {params.run_dir} "
        "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1"
