"""Multi-row INSERTs written by hand: for thousands of rows peewee's ``insert_many``
spends more time building the SQL than the database spends running it (measured in
bench/bench_insights.py)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from crmcore import sdk

CHUNK = 500


def insert_ready_rows(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT rows whose values the driver takes as they are (on SQLite: times already
    text): one ``executemany`` on SQLite (its loop is in C), multi-row INSERTs elsewhere."""
    if sdk.is_postgres():
        insert_rows(table, columns, rows)
        return
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    sdk.database.cursor().executemany(sql, rows)


def insert_rows(table: str, columns: tuple[str, ...], rows: list[tuple], json_columns: tuple[str, ...] = ()) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order) into ``table``, ``CHUNK`` at a time.
    Dates and datetimes go as text on SQLite (peewee's storage format); ``json_columns`` are dumped as
    ``JSONText`` dumps them (sorted keys)."""
    postgres = sdk.is_postgres()
    param = "%s" if postgres else "?"
    as_json = {columns.index(name) for name in json_columns}
    one = "(" + ", ".join([param] * len(columns)) + ")"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        values: list[Any] = []
        for row in chunk:
            for i, value in enumerate(row):
                if i in as_json:
                    value = json.dumps(value, default=str, sort_keys=True)
                elif not postgres and isinstance(value, dt.datetime):
                    value = value.isoformat(sep=" ")
                elif not postgres and isinstance(value, dt.date):
                    value = value.isoformat()
                values.append(value)
        sdk.database.execute_sql(head + ", ".join([one] * len(chunk)), values)
