"""Parquet schemas and IO (every writer and reader goes through `schemas`), and the collect scanner."""
