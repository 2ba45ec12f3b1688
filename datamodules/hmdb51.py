"""HMDB51 on-disk format (Kuehne et al., ICCV 2011).

Videos: ``<root>/<action>/<video>.avi``. Splits: ``testTrainMulti_7030_splits/<action>_test_split{1,2,3}.txt``,
one ``<video>.avi <id>`` row per video (trailing space in the official files) with id 1 = train,
2 = test, 0 = unused. Labels are the actions in sorted order, as every public code base numbers them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from datamodules.text import read_lines
from zoo.errors import DatasetError, parse_error

SPLIT_DIR = "testTrainMulti_7030_splits"
_SPLIT_FILE = re.compile(r"^(?P<action>.+)_test_split(?P<split>[123])\.txt$")


def read_classes(split_dir: str | os.PathLike, split: int = 1) -> list[str]:
    """The action names that have a split file for ``split``, sorted (label order)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: HMDB51 split folder not found")
    actions = sorted(
        m["action"] for p in split_dir.iterdir() if (m := _SPLIT_FILE.match(p.name)) and int(m["split"]) == split
    )
    if not actions:
        raise DatasetError(f"{split_dir}: no <action>_test_split{split}.txt files")
    return actions


def read_split(split_dir: str | os.PathLike, split: int = 1, train: bool = True) -> list[tuple[str, int]]:
    """``[(relative_path, label)]`` of one official split (``<action>/<video>.avi``, 0-based labels)."""
    split_dir = Path(split_dir)
    wanted = "1" if train else "2"
    items = []
    for label, action in enumerate(read_classes(split_dir, split)):
        path = split_dir / f"{action}_test_split{split}.txt"
        for line_no, line in enumerate(read_lines(path), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2") or "/" in fields[0]:
                raise parse_error(path, line_no, f"expected '<video>.avi <0|1|2>', got {line.strip()[:60]!r}")
            if fields[1] == wanted:
                items.append((f"{action}/{fields[0]}", label))
    return items
