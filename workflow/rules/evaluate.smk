# The evaluation stages of the stage registry (dataworth/runs.py: evaluate, probe, knn, rankme,
# ...), one rule each, generated here: a new stage is an entry there, never a rule here.
# Each runs once per pack of trained runs and writes its file in every run directory of the pack
# (evaluate: summary.parquet, the trained head on the training subset, test and OOD sets; the
# others evaluate the representation from model.pt alone, so a new metric never retrains).
# Its `eval` param holds the eval settings the stage reads, so that changing them reruns just
# that evaluation (Snakemake's params trigger), never training; the marker records them too
# (Packs.marker_text: checked without Snakemake's own records, e.g. after a `dvc pull`).
for stage in EVALUATIONS.values():

    rule:
        name:
            stage.name
        input:
            trained=f"{PACK_DIR}/train.done",
            data=DATA,
        output:
            f"{PACK_DIR}/{stage.name}.done",
        params:
            study=STUDY_JSON,
            runs=RUNS,
            eval=STUDY.eval_params(stage.name),
        log:
            f"{PACK_DIR}/logs/{stage.name}.log",
        benchmark:
            f"{PACK_DIR}/logs/{stage.name}.benchmark.tsv"
        threads: 1
        resources:
            **SLURM_RESOURCES["evaluate"],
        # {rule}, not stage.name: Snakemake evaluates a shell line when the job runs, after the loop.
        shell:
            "dataworth {rule} --study {params.study} --pack {wildcards.pack_id} --runs {params.runs} "
            "--data {input.data} --threads ${{SLURM_CPUS_PER_TASK:-{threads}}} > {log} 2>&1 "
            "&& echo {params.eval:q} > {output}"
