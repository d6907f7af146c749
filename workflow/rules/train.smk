# One job per pack (resources.runs_per_job runs; one by default): it trains the pack's runs in
# one process, each into its own run directory, and skips runs already trained. The marker is
# the job's only output, so Snakemake never deletes a finished run's files: a failed run fails
# the job (no marker) while the pack's other runs stay trained, and the next job trains only it.
rule train:
    input:
        data=DATA,
    output:
        touch(f"{PACK_DIR}/train.done"),
    params:
        study=STUDY_JSON,
        runs=RUNS,
    log:
        f"{PACK_DIR}/logs/train.log",
    benchmark:
        f"{PACK_DIR}/logs/train.benchmark.tsv"
    threads: 1
    # On SLURM (snakemake --profile slurm): GPU, CPUs, memory, time limit and the preemption
    # warning signal from the study. Locally they limit nothing.
    resources:
        **SLURM_RESOURCES["train"],
    # `exec`: no shell between Snakemake and the trainer, so SLURM's SIGTERM warning reaches a
    # trainer whose parent waits for it (a bash in between would die of it and fail the job).
    # Threads: on SLURM the CPUs the job was given, locally Snakemake's threads.
    # Each run's own log is <run dir>/logs/train.log; this job's log holds all of them.
    shell:
        "exec dataworth train --study {params.study} --pack {wildcards.pack_id} --data {input.data} "
        "--runs {params.runs} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1"
