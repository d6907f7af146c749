"""The UI link and the runs-page check of scripts/ui-screenshot (issue 20 item 3), on hand-made pages."""

from __future__ import annotations

import json
import urllib.parse

from dataworth.tracking.screenshots import check_runs_page
from dataworth.tracking.ui_links import VIEW_KEY, compare_runs_url, runs_table_url, view_state, view_tag_value


def test_the_link_opens_the_runs_tab_with_the_saved_view():
    assert runs_table_url("http://127.0.0.1:5000/", "7") == (
        f"http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey={VIEW_KEY}")
    envelope = json.loads(view_tag_value(("fog3_accuracy",), now_ms=5))
    assert envelope["name"].startswith("dataworth") and envelope["createdAt"] == envelope["updatedAt"] == 5
    state = json.loads(envelope["state"])
    assert state == view_state(("fog3_accuracy",))
    assert state["selectedColumns"][:3] == ["params.`augmentation`", "params.`n_train`", "params.`seed`"]
    assert state["selectedColumns"][-3:] == ["metrics.`test_accuracy`", "metrics.`ood_accuracy`",
                                             "metrics.`fog3_accuracy`"]
    url = compare_runs_url("http://h:1", ["r1", "r2"], ["2", "1", "2"])
    query = urllib.parse.parse_qs(url.split("?", 1)[1])
    assert url.startswith("http://h:1/#/compare-runs?")
    assert json.loads(query["runs"][0]) == ["r1", "r2"] and json.loads(query["experiments"][0]) == ["1", "2"]


def test_the_runs_page_check_tells_the_runs_table_from_the_traces_page():
    names = [f"none n={n} cnn1d-8 seed=0 (id{n})" for n in range(12)]
    rows = "".join(f"<div>{name}</div>" for name in names[:10])
    runs_page = f"<title>Runs - Experiment 1 - MLflow</title><div>tiny (study)</div>{rows}"
    assert check_runs_page(runs_page, "tiny", names) == []
    traces_page = "<title>Traces - Experiment 1 - MLflow</title><h2>Start tracing your LLM application</h2>"
    problems = check_runs_page(traces_page, "tiny", names)
    assert len(problems) == 3 and "not the runs table (title 'Traces - Experiment 1 - MLflow')" in problems[0]
    assert check_runs_page(runs_page.replace(rows, rows[: len(rows) // 2]), "tiny", names) == [
        "5 of the study's 12 training runs on the page, expected 10+"]
