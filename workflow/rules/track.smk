# The serial MLflow sync: every finished run and the study's results into MLflow, after
# everything `all` builds. `snakemake track` runs it (and first whatever it still needs).
# It is not part of `all`: MLflow is a view of the results, not a result, so the default target
# stays offline and never fails at its last step because a tracking server is down.
TRACK_RECORD = str(STUDY_DIR.mlflow_record)


rule track:
    input:
        # What `all` builds (metrics, the analysis), read when the DAG is built so the rule
        # follows whatever `all` grows to; its own record left out in case `all` includes it.
        lambda wildcards: [path for path in rules.all.input if path != TRACK_RECORD],
    output:
        TRACK_RECORD,
    params:
        study=STUDY_JSON,
    log:
        str(STUDY_DIR.logs / "track.log"),
    localrule: True
    shell:
        "dataworth track {params.study} --record {output} > {log} 2>&1"
