# Generate the study's dataset once; every run reads this file. Its name carries a hash of the
# dataset config, so a changed dataset is a new file and finished runs keep theirs.
rule prepare_data:
    output:
        DATA,
    params:
        config=json.dumps(STUDY.dataset_config()),
    log:
        str(STUDY_DIR.logs / "prepare_data.log"),
    localrule: True  # seconds of work: not worth a cluster job
    shell:
        # tee: its two lines also reach the console, so a failure is seen even when the log cannot be
        # written (a full disk); pipefail (Snakemake's bash strict mode) keeps prepare's exit status.
        "dataworth prepare --config {params.config:q} --out {output} 2>&1 | tee {log}"
