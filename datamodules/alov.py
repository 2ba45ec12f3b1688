"""ALOV300++ on-disk format.

Frames: ``imagedata++/<category>/<video>/%08d.jpg``; boxes:
``alov300++_rectangleAnnotation_full/<category>/<video>.ann``, one line per annotated frame (every
5th): the 1-based frame number and four corner points ``ax ay bx by cx cy dx dy``, turned into the
axis-aligned box (x, y, w, h) that contains them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import DatasetError, parse_error

FRAMES_DIR = "imagedata++"
ANN_DIR = "alov300++_rectangleAnnotation_full"


def corners_to_box(corners: np.ndarray) -> np.ndarray:
    """Axis-aligned (x, y, w, h) of four (x, y) corner points, (4, 2)."""
    corners = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    lo, hi = corners.min(0), corners.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def box_to_corners(box: np.ndarray) -> np.ndarray:
    """The four corners of (x, y, w, h), in the order ALOV writes them (bottom-left, clockwise)."""
    x, y, w, h = (float(v) for v in box)
    return np.array([[x, y + h], [x, y], [x + w, y], [x + w, y + h]])


def read_ann(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """``{frame_number (1-based): box}`` from a ``.ann`` file; a bad line names ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: ALOV annotation file not found")
    boxes: dict[int, np.ndarray] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 9:
            raise parse_error(path, line_no, f"expected frame number and 8 corner values, got {len(fields)}")
        try:
            frame = int(fields[0])
            values = np.array([float(f) for f in fields[1:]])
        except ValueError:
            raise parse_error(path, line_no, f"not a number in {line.strip()[:60]!r}") from None
        boxes[frame] = corners_to_box(values)
    return boxes


def write_ann(path: str | os.PathLike, boxes: dict[int, np.ndarray]) -> None:
    lines = []
    for frame, box in sorted(boxes.items()):
        corners = box_to_corners(box).reshape(-1)
        lines.append(f"{frame} " + " ".join(f"{v:.2f}" for v in corners))
    Path(path).write_text("\n".join(lines) + "\n")


@dataclass
class ALOVVideo:
    category: str
    name: str
    frames_dir: Path
    boxes: dict[int, np.ndarray]

    def frame_path(self, frame_number: int) -> Path:
        return self.frames_dir / f"{frame_number:08d}.jpg"


def list_videos(root: str | os.PathLike) -> list[ALOVVideo]:
    """Every annotated video under ``root`` (which holds ``imagedata++`` and the annotation folder)."""
    root = Path(root)
    ann_root, frames_root = root / ANN_DIR, root / FRAMES_DIR
    for folder in (ann_root, frames_root):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: ALOV300++ folder not found (expected {FRAMES_DIR}/ and {ANN_DIR}/)")
    videos = []
    for ann in sorted(ann_root.glob("*/*.ann")):
        frames_dir = frames_root / ann.parent.name / ann.stem
        if not frames_dir.is_dir():
            raise DatasetError(f"{ann}: frames folder {frames_dir} not found")
        videos.append(ALOVVideo(ann.parent.name, ann.stem, frames_dir, read_ann(ann)))
    return videos
