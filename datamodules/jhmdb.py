"""J-HMDB-21 in the ACT format (Kalogeiton et al. ICCV 2017; MOC ``src/datasets/dataset/hmdb.py``):
``<root>/Frames/<action>/<video>/%05d.png``, flow ``<root>/FlowBrox04/<action>/<video>/%05d.jpg`` and
``<root>/JHMDB-GT.pkl``; three splits, reported as their mean. Without the GT pickle, the official split files
(``<action>_test_split{1,2,3}.txt``) give the videos and splits (no boxes: enough to run a detector, not to train).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2

from datamodules.action_tubes import (
    JHMDB_RESOLUTION,
    TubeAnnotations,
    VideoTubes,
    read_act_gt,
    read_jhmdb_splits,
)
from datamodules.detection_frames import DetectionDataModule, FrameLayout
from datamodules.ssd_transforms import SSD_SIZE
from zoo.errors import DatasetError


def act_layout(root: str | Path, rgb_ext: str = "png", flow_dir: str = "FlowBrox04") -> FrameLayout:
    """ACT's folders: ``Frames/<video>/%05d.<rgb_ext>`` and ``<flow_dir>/<video>/%05d.jpg``."""
    return FrameLayout(Path(root), "Frames", rgb_ext, flow_dir, "jpg")


def jhmdb_annotations_from_splits(split_dir: str | Path, frames: FrameLayout | None = None,
                                  splits: Sequence[int] = (1, 2, 3)) -> TubeAnnotations:
    """Videos, labels and splits from the official J-HMDB split files, without tubes. With ``frames`` each video's
    frame count is the number of its frame images and its resolution that of its first; else 0 and 240 x 320."""
    classes, split_lists, labels = read_jhmdb_splits(split_dir, splits)
    videos = {}
    for name, label in sorted(labels.items()):
        num_frames, resolution = 0, JHMDB_RESOLUTION
        if frames is not None:
            folder = frames.frame_path(name, 1).parent
            num_frames = len(list(folder.glob(f"*.{frames.rgb_ext}")))
            if num_frames == 0:
                raise DatasetError(f"{folder}: no .{frames.rgb_ext} frames for video {name!r}")
            image = cv2.imread(str(frames.frame_path(name, 1)))
            if image is None:
                raise DatasetError(f"{frames.frame_path(name, 1)}: frame image cannot be read")
            resolution = image.shape[:2]
        videos[name] = VideoTubes(name, num_frames, (int(resolution[0]), int(resolution[1])), label, [])
    return TubeAnnotations("jhmdb", classes, videos, split_lists, Path(split_dir))


class JHMDBDataModule(DetectionDataModule):
    """J-HMDB-21, split 1, 2 or 3, from ``JHMDB-GT.pkl``, else (``split_dir``) from the official split files."""

    def __init__(self, root: str = "data/synthetic/jhmdb", split: int = 1, inputs: str = "rgb",
                 flow_dir: str | None = "FlowBrox04", annotation_file: str | None = None,
                 split_dir: str | None = None, ratios: str | Sequence[float] | None = "default",
                 input_size: int = SSD_SIZE, augment: bool = True, negate_flow_x: bool = True,
                 on_missing: str = "raise", batch_size: int = 32, num_workers: int = 2, on_error: str = "raise",
                 seed: int = 0, pin_memory: bool = True) -> None:
        super().__init__(root, split, inputs, flow_dir, annotation_file, ratios, input_size, augment, negate_flow_x,
                         on_missing, batch_size, num_workers, on_error, seed, pin_memory)

    def layout(self) -> FrameLayout:
        return act_layout(self.hparams.root, "png", self.hparams.flow_dir or "FlowBrox04")

    def read_annotations(self) -> TubeAnnotations:
        hp = self.hparams
        path = Path(hp.annotation_file) if hp.annotation_file else Path(hp.root) / "JHMDB-GT.pkl"
        if not path.is_file() and hp.split_dir:
            return jhmdb_annotations_from_splits(hp.split_dir, self.layout())
        return read_act_gt(path, "jhmdb", hp.on_missing)
