# One job per run. The run's resolved config travels as JSON; the job writes only its run dir.
# training.parquet is written last, so its presence means training finished.
rule train:
    input:
        data=DATA,
    output:
        training=f"{RUN_DIR}/training.parquet",
        history=f"{RUN_DIR}/history.parquet",
        model=f"{RUN_DIR}/model.pt",
    params:
        run=lambda w: json.dumps(STUDY.run(w.run_id)),
        run_dir=RUN_DIR,
    log:
        f"{RUN_DIR}/logs/train.log",
    benchmark:
        f"{RUN_DIR}/logs/train.benchmark.tsv"
    threads: 1
    shell:
        "dataworth train --run {params.run:q} --data {input.data} --run-dir {params.run_dir} "
        "--threads {threads} > {log} 2>&1"
