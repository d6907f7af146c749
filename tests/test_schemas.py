from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataworth.tracking.schemas import HISTORY, SchemaError, conform, read_parquet, write_parquet


def history_rows() -> pd.DataFrame:
    rows = pd.DataFrame({"run_id": ["r"], "step": [10], "loss": [0.5], "accuracy": [0.9], "lr": [0.1], "elapsed_seconds": [1.0]})
    # Columns of measurements some runs log (issue 19: local complexity): null here.
    return rows.assign(**{c: [None] for c in HISTORY.names if c not in rows.columns})


def test_roundtrip_keeps_types_and_column_order(tmp_path):
    df = history_rows()[["step", "run_id", *[c for c in HISTORY.names if c not in ("step", "run_id")]]]
    write_parquet(df, HISTORY, tmp_path / "h.parquet")
    back = read_parquet(tmp_path / "h.parquet", HISTORY)
    assert list(back.columns) == HISTORY.names
    assert back["step"].dtype == "int64" and back.loc[0, "loss"] == 0.5


def test_writers_must_give_every_column_and_no_other():
    with pytest.raises(SchemaError, match=r"missing \['lr'\]"):
        conform(history_rows().drop(columns="lr"), HISTORY)
    with pytest.raises(SchemaError, match=r"unexpected \['extra'\]"):
        conform(history_rows().assign(extra=1), HISTORY)


def test_older_files_read_with_later_columns_null_and_unknown_columns_fail(tmp_path):
    old = pa.Table.from_pandas(history_rows().drop(columns="elapsed_seconds"), preserve_index=False)
    pq.write_table(old, tmp_path / "old.parquet")
    back = read_parquet(tmp_path / "old.parquet", HISTORY)
    assert list(back.columns) == HISTORY.names and back["elapsed_seconds"].isna().all()
    pq.write_table(pa.Table.from_pandas(history_rows().assign(extra=1), preserve_index=False), tmp_path / "new.parquet")
    with pytest.raises(SchemaError, match="extra"):
        read_parquet(tmp_path / "new.parquet", HISTORY)


def test_atomic_writes_leave_files_with_the_usual_permissions(tmp_path):
    import os

    from dataworth.files import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
