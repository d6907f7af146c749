# The serial scanner: one row per run of the study into metrics.parquet, its summary joined with
# the evaluations of its representation the study asks for (RankMe; probe and k-NN). The eval
# param makes a re-evaluation that was interrupted before this step still refresh metrics.parquet;
# the runs param, a run leaving the study.
rule collect:
    input:
        # Every pack's evaluation markers: the runs of a pack share their method, so their evaluations.
        PACKS.markers(evaluations_only=True),
    output:
        str(STUDY_DIR.metrics),
    params:
        study=STUDY_JSON,
        eval=json.dumps(STUDY.spec.eval.model_dump()),
        # Which runs the table holds: a run leaving the grid rewrites it, though no pack job reruns.
        runs=short_hash(sorted(run["run_id"] for run in STUDY.runs)),
    log:
        str(STUDY_DIR.logs / "collect.log"),
    localrule: True
    shell:
        # The study, not {input}, names the files: thousands of paths would overflow the command line.
        "dataworth collect {params.study} --out {output} > {log} 2>&1"
