"""A2D Sentences (Gavrilyuk et al., CVPR 2018, Sec. 4.1): sentences that refer to one actor of an A2D video
(Xu et al., CVPR 2015), with that actor's mask on a few annotated frames.

Layout under the root (A2D's ``Release/`` and the A2D Sentences release beside it):

- ``Release/videoset.csv``: no header; video id, label, start time, end time, height, width, total frames,
  annotated frames, subset (0 = train, 1 = test);
- ``Release/clips320H/<vid>.mp4``;
- ``text_annotations/a2d_annotation.txt``: CSV ``video_id,instance_id,query[,short_query]`` (ids may start
  with ``-``; fields are trimmed);
- ``text_annotations/a2d_missed_videos.txt``: videos left out of A2D Sentences, one id a line;
- ``text_annotations/a2d_annotation_with_instances/<vid>/<frame:05d>.h5`` (1-based frame numbers): HDF5
  datasets ``instance`` (instance ids), ``reMask`` (masks written by MATLAB, so stored transposed: (W, H) for
  one instance, (N, W, H) for several) and ``reBBox`` (x1, y1, x2, y2, one column per instance: (4, N)).

A sample is (sentence, video, annotated frame, referred instance), made for every frame whose ``.h5`` holds
the instance with a non-empty mask (as MTTR and CMPC-V build them): a clip of ``num_frames`` frames centred
on the annotated frame (the annotated frame at index ``num_frames // 2``; frames past either end of the video
repeat the end frame) and the instance's mask in that frame.

Real quirks: the instance id ``1 (copy)`` of video ``T6bNPuKV-wY`` names a bird while instance ``1`` is a man,
so it is dropped with a warning (as MTTR does); a query whose instance has a mask in no frame gives no sample
and is counted in ``missing``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.base import ZooDataModule
from datamodules.clips import ClipSampleDataset, clip_indices, collate_clips
from datamodules.text import read_csv_rows, read_lines
from datamodules.video import open_video
from zoo.errors import DatasetError, VideoReadError, parse_error

log = logging.getLogger(__name__)

VIDEOSET = "Release/videoset.csv"
CLIPS_DIR = "Release/clips320H"
TEXT_DIR = "text_annotations"
ANNOTATION = f"{TEXT_DIR}/a2d_annotation.txt"
MISSED = f"{TEXT_DIR}/a2d_missed_videos.txt"
INSTANCES_DIR = f"{TEXT_DIR}/a2d_annotation_with_instances"
SUBSETS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class A2DVideo:
    """One row of ``videoset.csv``."""

    vid: str
    label: int
    height: int
    width: int
    total_frames: int
    annotated_frames: int
    subset: int  # 0 train, 1 test


@dataclass(frozen=True)
class Query:
    """One sentence of ``a2d_annotation.txt`` about instance ``instance`` of ``video`` (``line`` in the file)."""

    video: str
    instance: int
    sentence: str
    line: int


@dataclass
class FrameAnnotation:
    """The instances of one annotated frame: ids, (N, H, W) bool masks and (N, 4) x1, y1, x2, y2 boxes."""

    instances: list[int]
    masks: np.ndarray
    boxes: np.ndarray

    def mask_of(self, instance: int) -> np.ndarray | None:
        """The instance's mask, or None when the frame does not hold it."""
        return self.masks[self.instances.index(instance)] if instance in self.instances else None


def read_videoset(path: str | os.PathLike) -> dict[str, A2DVideo]:
    """``{vid: A2DVideo}`` of A2D's ``videoset.csv``; a malformed line is an error at ``file:line``."""
    videos: dict[str, A2DVideo] = {}
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 9:
            raise parse_error(path, n, f"expected 9 comma-separated fields, got {len(fields)}")
        try:
            label, _, _, height, width, total, annotated, subset = (int(float(f)) for f in fields[1:])
        except (ValueError, OverflowError):  # OverflowError: int(float("inf"))
            raise parse_error(path, n, f"fields 2-9 must be numbers: {line.strip()[:80]!r}") from None
        if subset not in (0, 1):
            raise parse_error(path, n, f"subset must be 0 (train) or 1 (test), not {subset}")
        videos[fields[0]] = A2DVideo(fields[0], label, height, width, total, annotated, subset)
    return videos


def read_annotations(path: str | os.PathLike) -> tuple[list[Query], list[tuple[int, str]]]:
    """The queries of ``a2d_annotation.txt`` (fields trimmed) and the ``(line, raw id)`` of rows whose instance
    id is not a number (the real ``1 (copy)``), which are dropped. A row with fewer than 3 fields or an empty
    sentence is an error at ``file:line``, and so is a quoted field that runs over several lines (an unbalanced
    quote, which would otherwise swallow the rows after it)."""
    queries, dropped = [], []
    for n, row in read_csv_rows(path, header="video_id"):
        if len(row) < 3:
            raise parse_error(path, n, f"expected video_id,instance_id,query; got {len(row)} field(s)")
        video, instance, sentence = (f.strip() for f in row[:3])
        if not video:
            raise parse_error(path, n, "empty video id")
        if not sentence:
            raise parse_error(path, n, "empty query")
        if not (instance.isascii() and instance.isdigit()):  # not '²', which isdigit() but int() refuses
            dropped.append((n, instance))
            continue
        queries.append(Query(video, int(instance), sentence, n))
    return queries, dropped


def read_missed(path: str | os.PathLike) -> set[str]:
    """Video ids of ``a2d_missed_videos.txt`` (an absent file lists none)."""
    return {line.strip() for line in read_lines(path) if line.strip()} if Path(path).is_file() else set()


def read_frame_annotation(path: str | os.PathLike) -> FrameAnnotation:
    """One ``<frame:05d>.h5``: masks transposed back to (N, H, W), boxes to (N, 4). A file that cannot be read,
    lacks a dataset, or whose masks do not match its ids is a DatasetError naming it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("instance", "reMask") if k not in f]
            if missing:
                raise DatasetError(f"{path}: no {', '.join(missing)} dataset in the A2D annotation file")
            ids = np.atleast_1d(np.asarray(f["instance"][()])).ravel()
            masks = np.asarray(f["reMask"][()])
            boxes = np.asarray(f["reBBox"][()], dtype=np.float64) if "reBBox" in f else None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read A2D annotation ({str(e).splitlines()[0][:120]})") from None
    n = len(ids)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[0] != n:
        raise DatasetError(f"{path}: reMask has shape {masks.shape} for {n} instance(s)")
    masks = masks.transpose(0, 2, 1) > 0
    if boxes is None:
        boxes = np.full((n, 4), np.nan)
    else:
        boxes = boxes.reshape(4, -1).T if boxes.size == 4 * n else np.full((n, 4), np.nan)
    return FrameAnnotation([int(i) for i in ids], masks, boxes)


def write_frame_annotation(path: str | os.PathLike, instances: list[int], masks: np.ndarray, boxes: np.ndarray
                           ) -> None:
    """Write one annotated frame as the A2D Sentences release does (``read_frame_annotation`` reads it back):
    ``instance``, ``reMask`` (N, W, H), or (W, H) for one instance, and ``reBBox`` (4, N)."""
    import h5py

    masks = np.asarray(masks, dtype=np.uint8).transpose(0, 2, 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["instance"] = np.asarray(instances, dtype=np.float64)
        f["reMask"] = masks[0] if len(instances) == 1 else masks
        f["reBBox"] = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).T


def frame_number(path: Path) -> int:
    """The 1-based frame number of ``<frame:05d>.h5``."""
    if not (path.stem.isascii() and path.stem.isdigit()) or int(path.stem) < 1:
        raise DatasetError(f"{path}: A2D annotation files are named <frame number>.h5 (1-based)")
    return int(path.stem)


@dataclass(frozen=True)
class A2DSample:
    """One evaluation or training sample: ``frame`` is 1-based."""

    video: str
    frame: int
    instance: int
    sentence: str
    source: str = field(default="", compare=False)  # where the sentence is, file:line


class A2DSentences(ClipSampleDataset):
    """The samples of one subset (``"train"`` or ``"test"``) of A2D Sentences, as clips of ``num_frames`` frames
    ``frame_step`` apart around each annotated frame, resized to ``input_size`` square (``augment``: the
    datamodule's training augmentation). ``cache`` keeps every decoded video and read mask in memory (per
    process: for small datasets read many times, such as the synthetic ones). Videos listed as missed are left
    out; a video with queries but no annotation folder is counted in ``missing`` (by video id; a query by
    ``<video>#<line>``) and left out (warning), as is a
    query with no mask in any frame.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str = "train",
        num_frames: int = 16,
        frame_step: int = 1,
        input_size: int = 512,
        augment: bool = False,
        backend: str = "decord",
        on_error: str = "raise",
        videos: Iterable[str] | None = None,
        modality: str = "rgb",
        cache: bool = False,
    ) -> None:
        super().__init__(num_frames, input_size, augment, on_error, modality)
        self.cache: dict[str, np.ndarray] | None = {} if cache else None
        self.mask_cache: dict[tuple[str, int, int], np.ndarray | None] = {}
        if subset not in SUBSETS:
            raise ValueError(f"subset must be 'train' or 'test', not {subset!r}")
        self.root, self.frame_step, self.backend = Path(root), frame_step, backend
        videoset_path = self.root / VIDEOSET
        if not videoset_path.is_file():
            raise DatasetError(f"{videoset_path}: A2D videoset.csv not found (root {self.root})")
        self.videoset = read_videoset(videoset_path)
        queries, dropped = read_annotations(self.root / ANNOTATION)
        for line, raw in dropped:
            log.warning("%s:%d: instance id %r is not a number; query dropped", self.root / ANNOTATION, line, raw)
        missed = read_missed(self.root / MISSED)
        wanted = set(videos) if videos is not None else None
        by_video: dict[str, list[Query]] = {}
        for q in queries:
            info = self.videoset.get(q.video)
            if info is None or info.subset != SUBSETS[subset] or q.video in missed:
                continue
            if wanted is None or q.video in wanted:
                by_video.setdefault(q.video, []).append(q)
        self.missing: dict[str, str] = {}
        self.samples: list[A2DSample] = []
        for vid in sorted(by_video):
            folder = self.root / INSTANCES_DIR / vid
            files = sorted(folder.glob("*.h5")) if folder.is_dir() else []
            if not files:
                self.missing[vid] = f"{folder}: no annotated frames"
                continue
            found: set[int] = set()
            for path in files:
                ann = read_frame_annotation(path)
                present = {i for i, m in zip(ann.instances, ann.masks) if m.any()}
                for q in by_video[vid]:
                    if q.instance in present:
                        self.samples.append(A2DSample(vid, frame_number(path), q.instance, q.sentence,
                                                      f"{self.root / ANNOTATION}:{q.line}"))
                        found.add(q.line)
            for q in by_video[vid]:
                if q.line not in found:
                    self.missing[f"{vid}#{q.line}"] = f"{self.root / ANNOTATION}:{q.line}: no mask in any frame"
        if self.missing:
            log.warning("A2D Sentences %s: %d video(s) or queries without masks left out; first: %s",
                        subset, len(self.missing), next(iter(self.missing.values())))
        if not self.samples:
            raise DatasetError(f"{self.root}: no A2D Sentences samples in subset {subset!r}")

    def __len__(self) -> int:
        return len(self.samples)

    def sentences(self) -> list[str]:
        return [s.sentence for s in self.samples]

    def video_path(self, vid: str) -> Path:
        return self.root / CLIPS_DIR / f"{vid}.mp4"

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any]]:
        s = self.samples[index]
        h5 = self.root / INSTANCES_DIR / s.video / f"{s.frame:05d}.h5"
        key = (s.video, s.frame, s.instance)
        if key in self.mask_cache:
            mask = self.mask_cache[key]
        else:
            if not h5.is_file():
                raise DatasetError(f"{h5}: annotation file not found")
            mask = read_frame_annotation(h5).mask_of(s.instance)
            if self.cache is not None:
                self.mask_cache[key] = mask
        if mask is None:
            raise DatasetError(f"{h5}: no instance {s.instance} (query {s.sentence!r})")
        path = self.video_path(s.video)
        if not path.is_file():
            raise VideoReadError(f"{path}: video not found")
        if self.cache is not None and s.video not in self.cache:
            with open_video(path, self.backend) as reader:
                self.cache[s.video] = reader.get_frames(np.arange(len(reader)))
        if self.cache is not None:
            video = self.cache[s.video]
            n = len(video)
        else:
            reader = open_video(path, self.backend)
            n = len(reader)
        if s.frame > n:
            if self.cache is None:
                reader.close()
            raise VideoReadError(f"{path}: annotated frame {s.frame} ({h5.name}) is past its {n} frames")
        indices = clip_indices(s.frame - 1, n, self.num_frames, self.frame_step)
        if self.cache is not None:
            frames = video[indices]
        else:
            with reader:
                frames = reader.get_frames(indices)
        if frames.shape[1:3] != mask.shape:
            raise DatasetError(f"{h5}: mask {mask.shape} does not match the frames {frames.shape[1:3]} of {path}")
        return frames, mask, s.sentence, {"video": s.video, "frame": s.frame, "instance": s.instance,
                                          "source": s.source}


class A2DSentencesDataModule(ZooDataModule):
    """A2D Sentences: training on the train subset (augmented), validation and test on the test subset.

    ``num_frames`` / ``frame_step`` / ``input_size`` / ``modality`` must match the model's (checked at fit start).
    """

    collate_fn = staticmethod(collate_clips)

    def __init__(
        self,
        root: str = "data/synthetic/a2d",
        num_frames: int = 16,
        frame_step: int = 1,
        input_size: int = 512,
        augment: bool = True,
        modality: str = "rgb",
        batch_size: int = 8,
        num_workers: int = 2,
        backend: str = "decord",
        on_error: str = "raise",
        cache: bool = False,
        seed: int = 0,
        pin_memory: bool = True,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, pin_memory)
        self.save_hyperparameters()

    def dataset(self, subset: str, augment: bool = False) -> A2DSentences:
        hp = self.hparams
        return A2DSentences(hp.root, subset, hp.num_frames, hp.frame_step, hp.input_size, augment, hp.backend,
                            hp.on_error, modality=hp.modality, cache=hp.cache)

    def train_sentences(self) -> list[str]:
        """The training sentences (for the model's vocabulary): those of the set-up training set, else indexed now."""
        train_set = getattr(self, "train_set", None)
        return (train_set if train_set is not None else self.dataset("train")).sentences()

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.train_set = self.dataset("train", self.hparams.augment)
        if stage in ("fit", "validate", "test", "predict"):
            self.val_set = self.test_set = self.dataset("test")

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.test_set, train=False)
