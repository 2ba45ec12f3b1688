"""OTB on-disk format: ``<root>/<Seq>/img/%04d.jpg`` + ``groundtruth_rect.txt`` (x, y, w, h per line).

The toolkit's files separate values by commas, tabs or spaces (mixed within one dataset). Boxes are
kept as written (top-left corner and size in pixels), as got10k-toolkit and pysot do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.video import FrameFolderReader
from zoo.errors import DatasetError, parse_error

_SPLIT = re.compile(r"[,\s]+")


def read_boxes(path: str | os.PathLike) -> np.ndarray:
    """(N, 4) float boxes from an OTB ground-truth or result file; a bad line names ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: box file not found")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        fields = [f for f in _SPLIT.split(text) if f]
        if len(fields) != 4:
            raise parse_error(path, line_no, f"expected 4 values x,y,w,h, got {len(fields)}: {text[:60]!r}")
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            raise parse_error(path, line_no, f"not a number in {text[:60]!r}") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def write_boxes(path: str | os.PathLike, boxes: np.ndarray, delimiter: str = ",") -> None:
    """Write (N, 4) boxes one per line, integers where they are whole."""
    lines = []
    for box in np.asarray(boxes, dtype=np.float64):
        box = np.nan_to_num(box, nan=0.0)
        lines.append(delimiter.join(str(int(v)) if float(v).is_integer() else f"{v:.2f}" for v in box))
    Path(path).write_text("\n".join(lines) + "\n")


@dataclass
class OTBSequence:
    """One sequence: its frames and ground-truth boxes (one per frame)."""

    name: str
    frames: list[Path]
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def load_sequence(folder: str | os.PathLike) -> OTBSequence:
    """Read ``<Seq>/img`` and ``<Seq>/groundtruth_rect.txt``."""
    folder = Path(folder)
    img = folder / "img"
    if not img.is_dir():
        raise DatasetError(f"{folder}: not an OTB sequence (no img/ folder)")
    gt = folder / "groundtruth_rect.txt"
    boxes = read_boxes(gt)
    frames = FrameFolderReader(img).files
    if len(boxes) > len(frames):
        raise DatasetError(f"{gt}: {len(boxes)} boxes for {len(frames)} frames in {img}")
    return OTBSequence(folder.name, frames, boxes)


def list_sequences(root: str | os.PathLike) -> list[str]:
    """Names of the sequence folders under ``root`` (those holding ``img/``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: OTB root folder not found (expected <root>/<Seq>/img/0001.jpg)")
    return sorted(p.name for p in root.iterdir() if (p / "img").is_dir())
