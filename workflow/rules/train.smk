# One job per run; it reads its run from the study and writes only its run dir.
# training.parquet is written last, so its presence means training finished.
rule train:
    input:
        data=DATA,
    output:
        training=f"{RUN_DIR}/training.parquet",
        history=f"{RUN_DIR}/history.parquet",
        model=f"{RUN_DIR}/model.pt",
    params:
        study=STUDY_JSON,
        run_dir=RUN_DIR,
    log:
        f"{RUN_DIR}/logs/train.log",
    benchmark:
        f"{RUN_DIR}/logs/train.benchmark.tsv"
    threads: 1
    # On SLURM (snakemake --profile slurm): GPU, CPUs, memory, time limit and the preemption
    # warning signal from the study. Locally they limit nothing.
    resources:
        **SLURM_RESOURCES["train"],
    # `exec`: no shell between Snakemake and the trainer, so SLURM's SIGTERM warning reaches a
    # trainer whose parent waits for it (a bash in between would die of it and fail the job).
    # Threads: on SLURM the CPUs the job was given, locally Snakemake's threads.
    shell:
        "exec dataworth train --study {params.study} --run-id {wildcards.run_id} --data {input.data} "
        "--run-dir {params.run_dir} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1"
