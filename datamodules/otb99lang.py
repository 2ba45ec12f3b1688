"""OTB99-lang (Li et al., CVPR 2017): OTB-100 videos and one sentence per sequence describing the target
in its first frame.

Layout: ``OTB_videos/<Seq>/img/0001.jpg ...`` (the OTB layout, read by ``datamodules.otb``) and
``OTB_query_train/<Seq>.txt`` / ``OTB_query_test/<Seq>.txt``, one sentence each. The folder a query file is
in gives the official split: 51 training sequences (those of OTB-2013) and 48 test sequences.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from datamodules.otb import OTBDataModule, OTBSequences, lookup
from zoo.errors import DatasetError

VIDEOS_DIR = "OTB_videos"
QUERY_DIRS = {"train": "OTB_query_train", "test": "OTB_query_test"}


def read_queries(root: str | os.PathLike, split: str = "test") -> dict[str, str]:
    """``{sequence: sentence}`` of one split; an empty query file is an error naming it."""
    if split not in QUERY_DIRS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    folder = Path(root) / QUERY_DIRS[split]
    if not folder.is_dir():
        raise DatasetError(f"{folder}: OTB99-lang query folder not found")
    queries = {}
    for path in sorted(folder.glob("*.txt")):
        sentence = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
        if not sentence:
            raise DatasetError(f"{path}: empty query")
        queries[path.stem] = sentence
    if not queries:
        raise DatasetError(f"{folder}: no <Seq>.txt query files")
    return queries


class OTB99LangSequences(OTBSequences):
    """OTB sequences of one OTB99-lang split, each item with its ``"sentence"``. A sequence whose query file
    exists but whose frames do not is an error unless ``allow_missing``; one without a query is not listed."""

    def __init__(
        self, root: str | os.PathLike, split: str = "test", allow_missing: bool = False, subset: str = "otb100"
    ) -> None:
        self.queries = read_queries(root, split)
        videos = Path(root) / VIDEOS_DIR
        super().__init__(videos, subset, allow_missing=True, names=list(self.queries))
        key = (lambda n: n) if subset == "folders" else (lambda n: lookup(n).name)
        self._sentence = {key(seq): sentence for seq, sentence in self.queries.items()}
        lost = sorted(set(self._sentence) - {info.name for info in self.infos})
        if lost and not allow_missing:
            raise DatasetError(f"{videos}: {len(lost)} sequences with a query have no frames: {', '.join(lost[:8])}")

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["sentence"] = self._sentence[item["name"]]
        return item


class OTB99LangDataModule(OTBDataModule):
    """OTB99-lang sequences for the test loop (``batch_size`` sequences in lockstep), with sentences."""

    def __init__(
        self,
        root: str,
        split: str = "test",
        subset: str = "otb100",
        allow_missing: bool = False,
        batch_size: int = 1,
        num_workers: int = 0,
    ) -> None:
        super().__init__(root, subset, allow_missing, None, batch_size, num_workers)
        self.split = split

    def setup(self, stage: str | None = None) -> None:
        self.test_set = OTB99LangSequences(self.root, self.split, self.allow_missing, self.subset)
