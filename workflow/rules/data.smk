# Generate the study's dataset once; every run reads this file. Its name carries a hash of the
# dataset config, so a changed dataset is a new file and finished runs keep theirs.
# Datasets read from files (CIFAR, CINIC-10, ...) are prepared in the shared cache under their
# data root while the study loads; this file then points at the cache's arrays. The data root is
# execution-only: it is passed outside the params, so moving the data to another root reruns
# nothing (the params of every other dataset are what they always were).
DATASET_CONFIG = json.dumps(STUDY.dataset_config())


rule prepare_data:
    output:
        DATA,
    params:
        config=json.dumps(STUDY.spec.dataset.model_dump(exclude={"root"})),
    log:
        str(STUDY_DIR.logs / "prepare_data.log"),
    localrule: True  # seconds of work: not worth a cluster job
    shell:
        # tee: its two lines also reach the console, so a failure is seen even when the log cannot be
        # written (a full disk); pipefail (Snakemake's bash strict mode) keeps prepare's exit status.
        "dataworth prepare --config {DATASET_CONFIG:q} --out {output} 2>&1 | tee {log}"
