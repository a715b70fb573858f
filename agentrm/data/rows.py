"""Rows of a benchmark file with line numbers: the containers (CSV, JSONL, JSON array), apart from formats.

Each reader returns `(line, row)` pairs where row is a dict, or a string saying why that line could not be
read (the loaders turn it into a RowProblem). Line numbers are 1-based: the line a CSV row / JSONL record
ends on, or the line a JSON-array element starts on (found by walking the array with `raw_decode`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from agentrm.errors import DataError

Row = dict[str, Any]
Rows = list[tuple[int, Row | str]]


def csv_rows(path: Path) -> tuple[list[str], Rows]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        if not header:
            raise DataError(f"{path}:1: empty CSV, expected a header line with column names")
        rows: Rows = []
        for row in reader:
            line = reader.line_num
            if None in row:
                rows.append((line, f"row has more cells than the header's {len(header)} columns"))
            elif any(v is None for v in row.values()):
                missing = [k for k, v in row.items() if v is None]
                rows.append(
                    (line, f"missing column(s) {', '.join(missing)}: the row has fewer cells than the header")
                )
            else:
                rows.append((line, row))
    return header, rows


def jsonl_rows(path: Path) -> Rows:
    rows: Rows = []
    with path.open(encoding="utf-8") as fh:
        for line, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                rows.append((line, f"not valid JSON ({exc.msg} at column {exc.colno})"))
                continue
            rows.append(
                (line, obj) if isinstance(obj, dict) else (line, "expected a JSON object on this line")
            )
    return rows


def json_rows(path: Path) -> Rows:
    """Records of a JSON array with the line each starts on (raw_decode walks the array to keep positions)."""
    text = path.read_text(encoding="utf-8")
    dec = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    i = skip(0)
    if i >= len(text) or text[i] != "[":
        raise DataError(
            f"{path}:1: a .json benchmark must be an array of records ([{{...}}, ...]); use .jsonl otherwise"
        )
    rows: Rows = []
    i = skip(i + 1)
    while i < len(text) and text[i] != "]":
        line = text.count("\n", 0, i) + 1
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); the file cannot be read past here"
            ) from None
        rows.append(
            (line, obj) if isinstance(obj, dict) else (line, "expected a JSON object as array element")
        )
        i = skip(end)
        if i < len(text) and text[i] == ",":
            i = skip(i + 1)
    return rows


def read_rows(path: Path) -> tuple[list[str] | None, Rows]:
    """(CSV header or None, rows) by file suffix."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return csv_rows(path)
    if suffix == ".jsonl":
        return None, jsonl_rows(path)
    if suffix == ".json":
        return None, json_rows(path)
    raise DataError(f"{path}: unknown benchmark file type {suffix!r}; use .csv, .jsonl or .json")
