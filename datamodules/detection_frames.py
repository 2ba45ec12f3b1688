"""Annotated frames for training and testing a per-frame action detector (SSD in ROAD / Two-in-One), one code path for
UCF101-24, J-HMDB-21 and UCF-Sports: the layouts differ only in folder names and image extensions (``FrameLayout``)
and in the annotation reader (``datamodules.action_tubes``).

Training frames are sampled per video as ROAD's ``data/ucf24.py`` (``make_lists``) does: a step of ``ratios[label]``
frames for a training video and ``max(1, ratio) * 3`` for the test subset used while training, frame indices
``0, step, 2 step, ... < numf - 1`` (0-based; the last frame is never sampled), keeping those with at least one box.
ROAD's ratios balance UCF101-24's classes (``ROAD_RATIOS``); the other datasets use every annotated frame.
Frames are numbered as the files are (1-based, see ``datamodules.action_tubes``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from datamodules.action_tubes import FRAME_BASE, UCF24_CLASSES, TubeAnnotations
from datamodules.base import SkippingDataset, ZooDataModule
from datamodules.flow_images import frame_files
from datamodules.ssd_transforms import SSD_SIZE, SSDAugmentation, SSDResize
from datamodules.video import read_rgb
from zoo.errors import DatasetError, VideoReadError

log = logging.getLogger(__name__)

# ROAD / Two-in-One data/ucf24.py ``ratios``: the training step of each UCF101-24 class (UCF24_CLASSES order)
ROAD_RATIOS: tuple[float, ...] = (1.03, 0.75, 4.22, 1.32, 0.8, 2.36, 1.99, 2.66, 2.68, 4.51, 5.56, 2.46, 3.17, 2.76,
                                  3.89, 2.28, 4.01, 3.08, 6.06, 3.28, 1.51, 3.05, 0.6, 3.84)
TEST_STEP_FACTOR = 3  # ROAD: the test subset evaluated during training takes every max(1, ratio) * 3 frames
INPUTS = ("rgb", "flow", "rgb+flow")


@dataclass(frozen=True)
class FrameLayout:
    """Where a dataset's frame images live: ``<root>/<rgb_dir>/<video>/%05d.<rgb_ext>`` and the flow images
    ``<root>/<flow_dir>/<video>/%05d.<flow_ext>`` (same names)."""

    root: Path
    rgb_dir: str = "rgb-images"
    rgb_ext: str = "jpg"
    flow_dir: str = "fastOF-images"
    flow_ext: str = "jpg"

    def frame_path(self, video: str, frame: int) -> Path:
        return frame_path(self.root, video, frame, self.rgb_dir, self.rgb_ext)

    def flow_path(self, video: str, frame: int) -> Path:
        return frame_path(self.root, video, frame, self.flow_dir, self.flow_ext)


def frame_path(root: str | Path, video: str, frame: int, folder: str = "rgb-images", ext: str = "jpg") -> Path:
    """``<root>/<folder>/<video>/<frame:05d>.<ext>``: frame 1 is ``00001`` (ROAD's and ACT's file names)."""
    return Path(root) / folder / video / f"{int(frame):05d}.{ext}"


@dataclass
class FrameSample:
    """One frame of a video with the boxes ``(K, 4)`` x1, y1, x2, y2 and labels ``(K,)`` of the tubes on it (K may
    be 0 for the frames of a test video)."""

    video: str
    frame: int
    boxes: np.ndarray
    labels: np.ndarray


def frame_boxes(ann: TubeAnnotations, video: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per frame number, the boxes and labels of every tube of ``video`` on it."""
    per_frame: dict[int, tuple[list, list]] = {}
    for tube in ann.videos[video].tubes:
        for row in tube.boxes:
            boxes, labels = per_frame.setdefault(int(row[0]), ([], []))
            boxes.append(row[1:5])
            labels.append(tube.label)
    return {f: (np.asarray(b, np.float64).reshape(-1, 4), np.asarray(lab, np.int64)) for f, (b, lab) in
            per_frame.items()}


def sampled_frames(ann: TubeAnnotations, videos: Sequence[str], ratios: Sequence[float] | None = None,
                   factor: float = 1.0) -> list[FrameSample]:
    """ROAD's frame sampling: per video a step of ``ratios[label] * factor`` (``max(1, ratio) * 3`` for ROAD's test
    subset: ``factor=3``, which also floors the ratio at 1) over 0-based indices ``0 .. numf - 2``, keeping the
    frames that have boxes. ``ratios=None``: every annotated frame (step 1, the last frame included)."""
    out = []
    for video in videos:
        v = ann.videos[video]
        boxes = frame_boxes(ann, video)
        if ratios is None:
            indices: Any = range(v.num_frames)
        else:
            ratio = float(ratios[v.label])
            step = max(1.0, ratio) * factor if factor != 1 else ratio
            indices = np.arange(0, v.num_frames - 1, step)
        for i in indices:
            frame = int(i) + FRAME_BASE
            if frame in boxes:
                out.append(FrameSample(video, frame, *boxes[frame]))
    return out


def all_frames(ann: TubeAnnotations, videos: Sequence[str]) -> list[FrameSample]:
    """Every frame ``1 .. num_frames`` of each video with its ground-truth boxes (none for most frames of an
    untrimmed video): what a detector runs over for frame-mAP and tube linking (ROAD's ``fulltest``)."""
    out = []
    for video in videos:
        boxes = frame_boxes(ann, video)
        empty = (np.zeros((0, 4)), np.zeros(0, np.int64))
        out += [FrameSample(video, f, *boxes.get(f, empty))
                for f in range(FRAME_BASE, ann.videos[video].num_frames + FRAME_BASE)]
    return out


def read_image(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 (H, W, 3) array; a missing or unreadable file is a VideoReadError naming it."""
    if not path.is_file():
        raise VideoReadError(f"{path}: frame image not found")
    try:
        return read_rgb(path)
    except VideoReadError:
        raise VideoReadError(f"{path}: frame image cannot be read") from None


def frame_numbers(folder: Path, ext: str) -> dict[int, str] | None:
    """Frame number -> file name of the ``%05d.<ext>`` files in ``folder`` (``flow_images.frame_files``: one
    directory listing, nothing opened); None when there is no such folder."""
    try:
        names = frame_files(folder, f"*.{ext}")
    except (FileNotFoundError, NotADirectoryError):
        return None
    return {int(name[: -len(ext) - 1]): name for name in names if name[: -len(ext) - 1].isdigit()}


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from an image file's header (nothing decoded); None when the file cannot be read (the
    frame's loader then names it)."""
    try:
        with Image.open(path) as image:
            return image.size
    except OSError:
        return None


def flow_mismatch(layout: FrameLayout, video: str, num_frames: int) -> str | None:
    """Why ``video``'s flow images do not fit its frames, one line naming its flow folder, or None when they do:
    flow files missing for frames the RGB folder has (for frames ``1 .. num_frames`` when it has no RGB folder), or
    a first flow image of another size than the first frame's. Two directory listings and two image headers."""
    flow_dir, rgb_dir = layout.root / layout.flow_dir / video, layout.root / layout.rgb_dir / video
    flow = frame_numbers(flow_dir, layout.flow_ext)
    if flow is None:
        return f"{flow_dir}: flow folder not found"
    rgb = frame_numbers(rgb_dir, layout.rgb_ext)
    expected = sorted(rgb) if rgb is not None else list(range(FRAME_BASE, num_frames + FRAME_BASE))
    lacking = [f for f in expected if f not in flow]
    if lacking:
        where = f"in {layout.rgb_dir}" if rgb is not None else "of the annotation"
        return (f"{flow_dir}: flow folder lacks {len(lacking)} of the {len(expected)} frames {where} "
                f"(first: {lacking[0]:05d}.{layout.flow_ext})")
    if rgb:
        first = expected[0]
        flow_size, rgb_size = image_size(flow_dir / flow[first]), image_size(rgb_dir / rgb[first])
        if flow_size and rgb_size and flow_size != rgb_size:
            return f"{flow_dir}: flow images are {flow_size[0]}x{flow_size[1]}, frames {rgb_size[0]}x{rgb_size[1]}"
    return None


def check_flow_folders(layout: FrameLayout, ann: TubeAnnotations, videos: Sequence[str], on_error: str = "raise"
                       ) -> dict[str, str]:
    """``flow_mismatch`` for each of ``videos``: the first mismatch is a DatasetError (``on_error="raise"``);
    with ``"skip"`` each is logged and returned, ``{video: reason}``, for the caller to leave the video out."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    bad = {}
    for video in videos:
        problem = flow_mismatch(layout, video, ann.videos[video].num_frames)
        if problem is None:
            continue
        if on_error == "raise":
            raise DatasetError(problem)
        log.warning("skipping video %s: %s", video, problem)
        bad[video] = problem
    return bad


Transform = Callable[[Any, Any, Any, Any], tuple[Any, Any, Any, Any]]


class DetectionFrames(SkippingDataset):
    """Frames for a per-frame detector. Items are dicts: ``rgb`` and/or ``flow`` float32 ``(3, S, S)`` in 0..255,
    RGB channel order (``inputs`` "rgb", "flow" or "rgb+flow"), ``boxes`` float32 ``(K, 4)`` x1, y1, x2, y2 in
    pixels of the returned image, ``labels`` int64 ``(K,)``, ``video``, ``frame``, ``size`` (the frame's original
    ``(h, w)``) and ``index``. ``transform`` (``SSDAugmentation`` / ``SSDResize``) moves images and boxes together.
    A missing or unreadable image is a VideoReadError naming the file; ``on_error="skip"`` skips and counts it."""

    def __init__(self, layout: FrameLayout, samples: Sequence[FrameSample], transform: Transform | None = None,
                 inputs: str = "rgb", on_error: str = "raise") -> None:
        super().__init__(on_error)
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, not {inputs!r}")
        self.layout, self.samples, self.inputs = layout, list(samples), inputs
        self.transform = transform if transform is not None else SSDResize(SSD_SIZE)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        rgb = flow = None
        if "rgb" in self.inputs.split("+"):
            rgb = read_image(self.layout.frame_path(s.video, s.frame))
        if "flow" in self.inputs.split("+"):
            flow = read_image(self.layout.flow_path(s.video, s.frame))
            if rgb is not None and flow.shape != rgb.shape:
                raise VideoReadError(f"{self.layout.flow_path(s.video, s.frame)}: flow image {flow.shape[:2]} does "
                                     f"not match its frame {rgb.shape[:2]}")
        size = (rgb if rgb is not None else flow).shape[:2]
        rgb_t, flow_t, boxes, labels = self.transform(_tensor(rgb), _tensor(flow), s.boxes, s.labels)
        item = {"boxes": boxes.float(), "labels": torch.as_tensor(labels, dtype=torch.int64), "video": s.video,
                "frame": s.frame, "size": size, "index": index}
        if rgb_t is not None:
            item["rgb"] = rgb_t
        if flow_t is not None:
            item["flow"] = flow_t
        return item


def _tensor(image: np.ndarray | None) -> torch.Tensor | None:
    return None if image is None else torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()


def collate_detections(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``rgb`` / ``flow`` into (B, 3, S, S) and ``index``; ``boxes`` and ``labels`` stay lists (K varies)."""
    batch: dict[str, Any] = {k: [item[k] for item in items] for k in items[0]}
    for key in ("rgb", "flow"):
        if key in batch:
            batch[key] = torch.stack(batch[key])
    batch["index"] = torch.tensor(batch["index"])
    return batch


class DetectionDataModule(ZooDataModule):
    """Base of the action-detection datamodules: ``fit`` trains on ROAD-sampled frames of the split's training
    videos (augmented) and validates on ROAD's test subset (step ``max(1, ratio) * 3``); ``test`` / ``predict``
    run over every frame of the test videos (``all_frames``). Subclasses give ``layout()`` and ``annotations()``.

    ``ratios``: "road" (ROAD's UCF101-24 ratios), None (every annotated frame) or one step per class.
    ``inputs``: "rgb", "flow" or "rgb+flow"; ``flow_dir`` names the flow folder (any name). When flow is read, each
    video's flow folder is checked once against its frames (``flow_mismatch``): a mismatch is a DatasetError naming
    the video, or with ``on_error="skip"`` the video is left out and counted in ``skipped_videos`` (video -> reason).
    """

    collate_fn = staticmethod(collate_detections)
    default_ratios: str | None = None

    def __init__(self, root: str, split: int = 1, inputs: str = "rgb", flow_dir: str | None = None,
                 annotation_file: str | None = None, ratios: str | Sequence[float] | None = "default",
                 input_size: int = SSD_SIZE, augment: bool = True, negate_flow_x: bool = True,
                 on_missing: str = "raise", batch_size: int = 32, num_workers: int = 2, on_error: str = "raise",
                 seed: int = 0, pin_memory: bool = True) -> None:
        super().__init__(batch_size, num_workers, seed, pin_memory)
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, not {inputs!r}")
        self.save_hyperparameters()
        self._ann: TubeAnnotations | None = None
        self.skipped_videos: dict[str, str] = {}
        self._flow_checked: set[str] = set()

    def layout(self) -> FrameLayout:
        raise NotImplementedError

    def read_annotations(self) -> TubeAnnotations:
        raise NotImplementedError

    @property
    def ann(self) -> TubeAnnotations:
        """The annotation (read once)."""
        if self._ann is None:
            self._ann = self.read_annotations()
            if self.hparams.split not in self._ann.splits:
                raise DatasetError(f"{self._ann.source}: no split {self.hparams.split} "
                                   f"(has {sorted(self._ann.splits)})")
        return self._ann

    @property
    def classes(self) -> list[str]:
        return self.ann.classes

    def ratios(self) -> Sequence[float] | None:
        r = self.hparams.ratios
        if isinstance(r, str):
            if r == "default":
                r = self.default_ratios
                if r == "road" and self.classes != list(UCF24_CLASSES):
                    r = None  # ROAD's steps are per UCF101-24 class
            if r == "road":
                return ROAD_RATIOS
            if r is not None:
                raise ValueError(f"ratios must be 'road', 'default', None or a list of steps, not {r!r}")
        if r is not None and len(r) != len(self.classes):
            raise ValueError(f"ratios has {len(r)} steps for {len(self.classes)} classes")
        return r

    def usable_videos(self, videos: Sequence[str]) -> list[str]:
        """``videos`` less those whose flow folder does not fit their frames (checked once per video, only when flow
        is read; see the class docstring)."""
        if "flow" not in self.hparams.inputs.split("+"):
            return list(videos)
        todo = [v for v in dict.fromkeys(videos) if v not in self._flow_checked]
        self.skipped_videos.update(check_flow_folders(self.layout(), self.ann, todo, self.hparams.on_error))
        self._flow_checked.update(todo)
        return [v for v in videos if v not in self.skipped_videos]

    def dataset(self, subset: str, augment: bool = False) -> DetectionFrames:
        """``train`` (ROAD-sampled), ``val`` (ROAD's test subset) or ``test`` (every frame of the test videos)."""
        hp = self.hparams
        train, test = self.ann.splits[hp.split]
        ratios = self.ratios()
        if subset == "train":
            samples = sampled_frames(self.ann, self.usable_videos(train), ratios)
        elif subset == "val":
            samples = sampled_frames(self.ann, self.usable_videos(test), ratios,
                                     factor=TEST_STEP_FACTOR if ratios is not None else 1)
        elif subset == "test":
            samples = all_frames(self.ann, self.usable_videos(test))
        else:
            raise ValueError(f"subset must be train, val or test, not {subset!r}")
        transform = (SSDAugmentation(hp.input_size, negate_flow_x=hp.negate_flow_x) if augment
                     else SSDResize(hp.input_size))
        return DetectionFrames(self.layout(), samples, transform, hp.inputs, hp.on_error)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.train_set = self.dataset("train", self.hparams.augment)
        if stage in ("fit", "validate"):
            self.val_set = self.dataset("val")
        if stage in ("test", "predict"):
            self.test_set = self.dataset("test")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)
