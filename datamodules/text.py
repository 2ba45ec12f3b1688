"""Strict UTF-8 reading of list and annotation files: a byte that is not UTF-8 is a one-line DatasetError
naming the file, line and column, never a UnicodeDecodeError traceback or a silently replaced character."""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import DatasetError, parse_error


def read_text(path: str | os.PathLike) -> str:
    """The text of a UTF-8 file with line ends made ``\\n`` (as ``Path.read_text``) and a leading byte-order
    mark dropped; an unreadable file or a byte that is not UTF-8 is a DatasetError at ``file:line``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        # count lines as str.splitlines does, so the number agrees with the readers' line numbers
        lines = (data[: e.start].decode("utf-8") + "x").splitlines()
        where = f"byte 0x{data[e.start]:02x} at column {len(lines[-1])}"
        raise parse_error(path, len(lines), f"not UTF-8 text ({where})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 file (``read_text(path).splitlines()``); line ``i`` of the file is item ``i - 1``."""
    return read_text(path).splitlines()


def read_csv_rows(path: str | os.PathLike, header: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of each non-blank row of a UTF-8 CSV file (``line``: the row's first line), skipping a first
    row whose first field is ``header``; a quoted field that runs over several lines (an unbalanced quote, which
    would otherwise swallow the rows after it) is a DatasetError at ``file:line``."""
    reader, end = csv.reader(io.StringIO(read_text(path))), 0
    for row in reader:
        n, end = end + 1, reader.line_num
        if any("\n" in f for f in row):
            raise parse_error(path, n, "a quoted field runs past the end of its line (unbalanced quote?)")
        if not row or not any(f.strip() for f in row) or (n == 1 and header is not None and row[0].strip() == header):
            continue
        yield n, row
