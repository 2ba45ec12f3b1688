"""ALOV300++ on-disk format.

Frames: ``imagedata++/<category>/<video>/%08d.jpg``; boxes:
``alov300++_rectangleAnnotation_full/<category>/<video>.ann``, one line per annotated frame (every
5th): the 1-based frame number and four corner points ``ax ay bx by cx cy dx dy``, turned into the
axis-aligned box (x, y, w, h) that contains them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import ZooDataModule
from datamodules.detection_frames import image_size
from datamodules.text import read_lines
from datamodules.video import read_rgb
from zoo.errors import DatasetError, parse_error

log = logging.getLogger(__name__)

FRAMES_DIR = "imagedata++"
ANN_DIR = "alov300++_rectangleAnnotation_full"
# Excluded from SINT's training data, as in the official code: the long-duration category and the
# videos that also appear in OTB.
EXCLUDED_CATEGORY_SUFFIX = "LongDuration"
OTB_OVERLAP = (
    "01-Light_video00007",
    "01-Light_video00015",
    "01-Light_video00016",
    "01-Light_video00021",
    "02-SurfaceCover_video00012",
    "06-MotionSmoothness_video00016",
    "06-MotionSmoothness_video00019",
    "08-Clutter_video00011",
    "09-Confusion_video00028",
    "11-Occlusion_video00010",
    "11-Occlusion_video00024",
    "11-Occlusion_video00025",
)


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
    """``{frame_number (1-based): box}`` from a ``.ann`` file; a bad line (NaN and inf included) names ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: ALOV annotation file not found")
    boxes: dict[int, np.ndarray] = {}
    for line_no, line in enumerate(read_lines(path), 1):
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
        if not np.isfinite(values).all():
            raise parse_error(path, line_no, f"corner values must be finite, got {line.strip()[:60]!r}")
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


def _folders(root: str | os.PathLike) -> tuple[Path, Path]:
    """(annotation folder, frames folder) of an ALOV300++ root, which must both exist."""
    root = Path(root)
    ann_root, frames_root = root / ANN_DIR, root / FRAMES_DIR
    for folder in (ann_root, frames_root):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: ALOV300++ folder not found (expected {FRAMES_DIR}/ and {ANN_DIR}/)")
    return ann_root, frames_root


def list_videos(root: str | os.PathLike) -> list[ALOVVideo]:
    """Every annotated video under ``root`` (which holds ``imagedata++`` and the annotation folder);
    a missing frames folder is an error (``usable_videos`` skips such videos instead)."""
    ann_root, frames_root = _folders(root)
    videos = []
    for ann in sorted(ann_root.glob("*/*.ann")):
        frames_dir = frames_root / ann.parent.name / ann.stem
        if not frames_dir.is_dir():
            raise DatasetError(f"{ann}: frames folder {frames_dir} not found")
        videos.append(ALOVVideo(ann.parent.name, ann.stem, frames_dir, read_ann(ann)))
    return videos


def is_excluded(video: ALOVVideo) -> bool:
    return video.category.endswith(EXCLUDED_CATEGORY_SUFFIX) or video.name in OTB_OVERLAP


def check_video(video: ALOVVideo) -> str | None:
    """Why a video cannot be used (missing frames, annotation rows out of range), or None."""
    frames = sorted(video.frames_dir.glob("*.jpg"))
    if not frames:
        return "no frames"
    count = len(frames)
    for number in sorted(video.boxes):
        if not 1 <= number <= count:
            return f"annotated frame {number} out of range 1..{count}"
        if not video.frame_path(number).is_file():
            return f"frame {video.frame_path(number).name} missing"
        if video.boxes[number][2] <= 0 or video.boxes[number][3] <= 0:
            return f"empty box at frame {number}"
    return None


def usable_videos(root: str | os.PathLike, exclude: bool = True) -> list[ALOVVideo]:
    """Annotated videos for training: the excluded ones left out, broken ones skipped with a warning that
    names the annotation file."""
    ann_root, frames_root = _folders(root)
    videos = []
    for ann in sorted(ann_root.glob("*/*.ann")):
        video = ALOVVideo(ann.parent.name, ann.stem, frames_root / ann.parent.name / ann.stem, read_ann(ann))
        if exclude and is_excluded(video):
            continue
        problem = check_video(video)
        if problem:
            log.warning("skipping ALOV video %s: %s", ann, problem)
            continue
        videos.append(video)
    return videos


def split_videos(videos: list[ALOVVideo]) -> tuple[list[ALOVVideo], list[ALOVVideo]]:
    """(train, val): the last video of each category is for validation."""
    last = {}
    for v in videos:
        last[v.category] = max(last.get(v.category, v.name), v.name)
    val_names = set(last.values())
    return [v for v in videos if v.name not in val_names], [v for v in videos if v.name in val_names]


def clipped_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """An annotation box cut to the image (ALOV's corner boxes may leave it)."""
    box = np.asarray(box, dtype=np.float64).copy()
    box[:2] = np.clip(box[:2], 0, [width - 1, height - 1])
    box[2:] = np.minimum(box[2:], [width - box[0], height - box[1]])
    return box


class ALOVPairs(Dataset):
    """SINT training pairs (Sec. 4.1) as ``prepare4hdf5gen.m`` forms them: the annotations are thinned to every
    ``annotation_step``-th (2) and every annotated frame is paired with every later one of its video
    (``pairs="all"``); ``pairs="random"`` gives each frame one random partner per epoch instead. Each frame brings 64
    boxes: the ground truth first, then 63 drawn without replacement from its polar candidates with IoU > 0.7 or
    < 0.5; a frame with fewer candidates is left out with its pairs, as the official scripts drop them. Frames are
    resized to ``input_size`` (aspect not kept); boxes are rounded to input pixels as ``genHDF5.m`` rounds them.

    Items: ``{"images": uint8 (2, 3, S, S), "boxes": (2, 64, 4) x1 y1 x2 y2 in input pixels, "labels": (2, 64)}``,
    the earlier frame first.
    """

    def __init__(
        self,
        videos: list[ALOVVideo],
        input_size: int = 512,
        boxes_per_frame: int = 64,
        pos_iou: float = 0.7,
        neg_iou: float = 0.5,
        augment: bool = False,
        deterministic: bool = False,
        pairs: str = "all",
        annotation_step: int = 2,
    ) -> None:
        from zoo.sint.sampling import labelled_candidates

        if pairs not in ("all", "random"):
            raise ValueError(f"pairs must be 'all' or 'random', not {pairs!r}")
        if annotation_step < 1:
            raise ValueError(f"annotation_step must be a positive integer, not {annotation_step!r}")
        self.videos = videos
        self.input_size, self.boxes_per_frame = input_size, boxes_per_frame
        self.pos_iou, self.neg_iou = pos_iou, neg_iou
        self.deterministic = deterministic
        self.frames: list[list[int]] = []  # per video: the annotated frames that give enough boxes
        for video in videos:
            numbers = sorted(video.boxes)[::annotation_step]
            size = image_size(video.frame_path(numbers[0])) if numbers else (0, 0)
            if size is None:
                raise DatasetError(f"{video.frame_path(numbers[0])}: not a readable image")
            w, h = size
            self.frames.append([
                n for n in numbers
                if len(labelled_candidates(clipped_box(video.boxes[n], w, h), w, h, pos_iou, neg_iou)[0])
                >= boxes_per_frame - 1
            ])
        if pairs == "all":
            self.items = [(v, a, b) for v, fs in enumerate(self.frames) for i, a in enumerate(fs) for b in fs[i + 1 :]]
        else:
            self.items = [(v, a, -1) for v, fs in enumerate(self.frames) if len(fs) > 1 for a in fs]
        self.transform = None
        if augment:
            import albumentations as A

            self.transform = A.Compose(
                [A.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.8), A.GaussianBlur(p=0.2), A.HorizontalFlip(p=0.5)],
                bbox_params=A.BboxParams(format="coco", label_fields=["ids"], clip=True),
            )

    def __len__(self) -> int:
        return len(self.items)

    def _frame(
        self, video: ALOVVideo, number: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from zoo.sint.sampling import caffe_rois, sample_training_boxes

        image = read_rgb(video.frame_path(number))
        h, w = image.shape[:2]
        box = clipped_box(video.boxes[number], w, h)
        sampled = None
        if self.transform is not None:
            out = self.transform(image=image, bboxes=[box.tolist()], ids=[0])
            if out["bboxes"]:
                aug_box = np.asarray(out["bboxes"][0], dtype=np.float64)
                sampled = sample_training_boxes(aug_box, w, h, rng, self.boxes_per_frame, self.pos_iou, self.neg_iou)
                image = out["image"] if sampled is not None else image
        if sampled is None:  # the frame was chosen for having enough boxes un-augmented
            sampled = sample_training_boxes(box, w, h, rng, self.boxes_per_frame, self.pos_iou, self.neg_iou)
        boxes, labels = sampled
        s = self.input_size
        resized = cv2.resize(image, (s, s), interpolation=cv2.INTER_LINEAR)
        return resized, caffe_rois(boxes, 0, s / w, s / h, rounded=True)[:, 1:].numpy(), labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        seed = index if self.deterministic else int(torch.randint(2**31, ()))
        rng = np.random.default_rng(seed)
        v, a, b = self.items[index]
        video = self.videos[v]
        if b < 0:
            others = [f for f in self.frames[v] if f != a]
            b = int(others[rng.integers(len(others))])
        frames, boxes, labels = zip(*(self._frame(video, n, rng) for n in sorted((a, b))))
        return {
            "images": torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous(),
            "boxes": torch.from_numpy(np.stack(boxes)).float(),
            "labels": torch.from_numpy(np.stack(labels)).float(),
        }


class ALOVDataModule(ZooDataModule):
    """ALOV300++ frame pairs for SINT (``ALOVPairs``); the last video of each category is the validation set."""

    def __init__(
        self,
        root: str,
        input_size: int = 512,
        boxes_per_frame: int = 64,
        augment: bool = False,
        exclude: bool = True,
        pairs: str = "all",
        annotation_step: int = 2,
        batch_size: int = 4,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        videos = usable_videos(hp.root, exclude=hp.exclude)
        if not videos:
            raise DatasetError(f"{hp.root}: no usable ALOV300++ videos")
        train, val = split_videos(videos)
        if not train:
            train, val = val, []
        kw = dict(pairs=hp.pairs, annotation_step=hp.annotation_step)
        self.train_set = ALOVPairs(train, hp.input_size, hp.boxes_per_frame, augment=hp.augment, **kw)
        self.val_set = ALOVPairs(val, hp.input_size, hp.boxes_per_frame, deterministic=True, **kw) if val else None
        if self.val_set is not None and len(self.val_set) == 0:
            self.val_set = None
        if len(self.train_set) == 0:
            raise DatasetError(f"{hp.root}: no ALOV300++ frame pair has {hp.boxes_per_frame} boxes per frame")
