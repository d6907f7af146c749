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
        "dataworth prepare --config {params.config:q} --out {output} > {log} 2>&1"
