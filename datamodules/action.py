"""Action-recognition video lists, one code path for UCF101 and HMDB51: which videos a split holds,
which of them are on disk, and where their frames come from (the video file or a prepared frame store)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from datamodules import hmdb51, ucf101
from datamodules.video import VideoReader, open_video
from zoo.errors import DatasetError, VideoReadError

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


class SplitClasses:
    """``class_names`` and ``num_classes`` of a datamodule whose hyperparameters name an official split (``dataset``,
    ``root``, ``split``, ``split_dir``); a classifier records the names when fitting starts."""

    @property
    def class_names(self) -> list[str]:
        """Class names in label order."""
        hp = self.hparams
        return read_action_split(hp.dataset, hp.root, hp.split, True, hp.split_dir)[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


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


def split_videos(
    dataset: str,
    root: str | os.PathLike,
    split: int,
    train: bool,
    split_dir: str | os.PathLike | None = None,
    frame_store: str | os.PathLike | None = None,
) -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """``(classes, items on disk, missing relative paths)`` of an official split (``read_action_split``,
    ``present_items``); a split with none of its videos on disk is a VideoReadError naming the folder."""
    classes, items = read_action_split(dataset, root, split, train, split_dir)
    kept, missing = present_items(root, items, frame_store)
    if not kept:
        raise VideoReadError(f"{frame_store or root}: none of the {len(items)} videos of the split is on disk")
    return classes, kept, missing


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
