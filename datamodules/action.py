"""Action-recognition video lists, one code path for UCF101 and HMDB51: which videos a split holds,
which of them are on disk, and where their frames come from (the video file or a prepared frame store)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from datamodules import hmdb51, ucf101
from datamodules.video import VideoReader, open_video
from zoo.errors import DatasetError

log = logging.getLogger(__name__)

DATASETS = ("ucf101", "hmdb51")
FRAME_STORE_SUFFIX = ".npy"


def default_split_dir(dataset: str, root: str | os.PathLike) -> Path:
    return Path(root) / (ucf101.SPLIT_DIR if dataset == "ucf101" else hmdb51.SPLIT_DIR)


def read_action_split(
    dataset: str,
    root: str | os.PathLike,
    split: int = 1,
    train: bool = True,
    split_dir: str | os.PathLike | None = None,
) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, [(relative_path, label)])`` of an official split of UCF101 or HMDB51."""
    if dataset not in DATASETS:
        raise DatasetError(f"unknown action dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    split_dir = Path(split_dir) if split_dir else default_split_dir(dataset, root)
    if dataset == "ucf101":
        return ucf101.read_class_index(split_dir / "classInd.txt"), ucf101.read_split(split_dir, split, train)
    return hmdb51.read_classes(split_dir, split), hmdb51.read_split(split_dir, split, train)


def present_items(
    root: str | os.PathLike, items: list[tuple[str, int]], frame_store: str | os.PathLike | None = None
) -> tuple[list[tuple[str, int]], list[str]]:
    """Split ``items`` into those on disk and the missing relative paths; the missing ones are logged as a list."""
    base = Path(frame_store) if frame_store else Path(root)
    suffix = FRAME_STORE_SUFFIX if frame_store else ""
    kept, missing = [], []
    for rel, label in items:
        (kept if (base / (rel + suffix)).is_file() else missing).append((rel, label))
    missing_paths = [rel for rel, _ in missing]
    if missing_paths:
        shown = ", ".join(missing_paths[:20]) + (" ..." if len(missing_paths) > 20 else "")
        log.warning("%s: %d of %d videos named in the split are missing and skipped: %s",
                    base, len(missing_paths), len(items), shown)
    return kept, missing_paths


def open_item(
    root: str | os.PathLike,
    rel: str,
    size: tuple[int, int] | None,
    backend: str = "decord",
    frame_store: str | os.PathLike | None = None,
) -> VideoReader:
    """A reader of one listed video: its frames in the prepared store when one is given, else the file."""
    if frame_store:
        from datamodules.frame_store import FrameStoreReader

        return FrameStoreReader(Path(frame_store) / (rel + FRAME_STORE_SUFFIX), size=size)
    return open_video(Path(root) / rel, backend=backend, size=size)
