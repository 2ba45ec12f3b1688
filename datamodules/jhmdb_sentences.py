"""J-HMDB Sentences (Gavrilyuk et al., CVPR 2018, Sec. 4.1): one sentence for each of J-HMDB's 928 videos,
describing its one actor, scored against J-HMDB's puppet masks. Evaluation only: models are trained on
A2D Sentences and not fine-tuned here.

Layout under the root:

- ``jhmdb_annotation.txt``: CSV ``video_id,query`` (a header line is allowed);
- ``Rename_Images/<action>/<video>/%05d.png``: the frames (1-based);
- ``puppet_mask/<action>/<video>/puppet_mask.mat``: ``part_mask``, H x W x T (the last frames may have no
  mask: T can be shorter than the video);
- optionally ``jhmdb_sentences_samples_metadata.json`` (MTTR's list, used by MTTR and ReferFormer): samples
  ``[video, frame path, mask path, frame count, query]``, three frames per video, 2,784 in all.

``samples="three"`` (the default) evaluates that list; ``"all"`` every frame that has a mask. Which one the
paper's numbers used is not stated in what we could read; MTTR says its list follows the paper's protocol
(so the published MTTR / ReferFormer numbers use ``"three"``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.base import ZooDataModule
from datamodules.clips import ClipSampleDataset, clip_indices, collate_clips
from datamodules.text import read_csv_rows, read_text
from datamodules.video import read_rgb
from zoo.errors import DatasetError, parse_error

log = logging.getLogger(__name__)

ANNOTATION = "jhmdb_annotation.txt"
FRAMES_DIR = "Rename_Images"
MASKS_DIR = "puppet_mask"
MASK_FILE = "puppet_mask.mat"
METADATA = "jhmdb_sentences_samples_metadata.json"
SAMPLE_MODES = ("three", "all")


def read_jhmdb_annotations(path: str | os.PathLike) -> dict[str, str]:
    """``{video: sentence}`` of ``jhmdb_annotation.txt``; a row without a sentence is an error at ``file:line``."""
    queries: dict[str, str] = {}
    for n, row in read_csv_rows(path, header="video_id"):
        if len(row) < 2 or not row[1].strip() or not row[0].strip():
            raise parse_error(path, n, "expected video_id,query with both present")
        queries[row[0].strip()] = ",".join(row[1:]).strip()
    return queries


@dataclass(frozen=True)
class JHMDBSample:
    """One sample: ``frame`` is 1-based; ``action`` is the folder under ``Rename_Images``."""

    video: str
    action: str
    frame: int
    num_frames: int
    sentence: str
    source: str = field(default="", compare=False)  # where the sentence is


def read_samples_metadata(path: str | os.PathLike) -> list[JHMDBSample]:
    """MTTR's ``jhmdb_sentences_samples_metadata.json``: ``[video, './jhmdb_sentences/Rename_Images/<action>/
    <video>/<frame>.png', mask path, frame count, query]`` per sample; a malformed entry names its index."""
    try:
        entries = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise parse_error(path, e.lineno, f"invalid JSON ({e.msg})") from None
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: expected a list of samples")
    samples = []
    for i, entry in enumerate(entries):
        try:
            video, frame_path, _, count, query = entry
            parts = Path(frame_path).parts
            sample = JHMDBSample(str(video), parts[-3], int(Path(frame_path).stem), int(count), str(query),
                                 f"{path}: sample {i}")
        except (ValueError, TypeError, IndexError, OverflowError):  # OverflowError: a count of Infinity
            raise DatasetError(f"{path}: sample {i} is not [video, frame path, mask path, frame count, query]"
                               ) from None
        if not 1 <= sample.frame <= sample.num_frames:  # frame 0 would read the last mask; past the end, a wrong clip
            raise DatasetError(f"{path}: sample {i}: frame {sample.frame} is not in 1..{sample.num_frames}")
        samples.append(sample)
    return samples


def read_puppet_mask(path: str | os.PathLike) -> np.ndarray:
    """``part_mask`` of a ``puppet_mask.mat`` as (T, H, W) bool; a missing or malformed file names itself."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        data = scipy.io.loadmat(str(path))
    except (OSError, ValueError, NotImplementedError, MatReadError) as e:  # MatReadError: truncated or not a .mat
        raise DatasetError(f"{path}: cannot read puppet mask ({str(e).splitlines()[0][:120]})") from None
    if "part_mask" not in data:
        raise DatasetError(f"{path}: no part_mask in the file")
    mask = np.asarray(data["part_mask"])
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.ndim != 3:
        raise DatasetError(f"{path}: part_mask must be H x W x T, not {mask.shape}")
    return mask.transpose(2, 0, 1) > 0


def write_puppet_mask(path: str | os.PathLike, masks: np.ndarray) -> None:
    """Write (T, H, W) masks as J-HMDB does (``part_mask`` H x W x T, uint8)."""
    import scipy.io

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"part_mask": np.ascontiguousarray(np.asarray(masks, np.uint8).transpose(1, 2, 0))},
                     do_compression=True)


class JHMDBSentences(ClipSampleDataset):
    """J-HMDB Sentences samples as clips around each frame (see ``datamodules.clips``). ``samples="three"`` reads
    ``metadata`` (default ``<root>/jhmdb_sentences_samples_metadata.json``); ``"all"`` takes every frame of every
    video in ``jhmdb_annotation.txt`` that has a mask. A requested frame past the ``.mat``'s frames is a
    DatasetError naming the file (skipped and counted with ``on_error="skip"``); with ``"all"`` such frames are
    not listed, and the count of them is logged."""

    def __init__(
        self,
        root: str | os.PathLike,
        samples: str = "three",
        metadata: str | os.PathLike | None = None,
        num_frames: int = 16,
        frame_step: int = 1,
        input_size: int = 512,
        on_error: str = "raise",
        modality: str = "rgb",
    ) -> None:
        super().__init__(num_frames, input_size, False, on_error, modality)
        if samples not in SAMPLE_MODES:
            raise ValueError(f"samples must be one of {', '.join(SAMPLE_MODES)}, not {samples!r}")
        self.root, self.frame_step = Path(root), frame_step
        if samples == "three":
            meta = Path(metadata) if metadata is not None else self.root / METADATA
            if not meta.is_file():
                raise DatasetError(f"{meta}: J-HMDB Sentences samples list not found (samples='all' needs none)")
            self.samples = read_samples_metadata(meta)
        else:
            self.samples = self._all_frames()
        if not self.samples:
            raise DatasetError(f"{self.root}: no J-HMDB Sentences samples")

    def _all_frames(self) -> list[JHMDBSample]:
        path = self.root / ANNOTATION
        if not path.is_file():
            raise DatasetError(f"{path}: J-HMDB Sentences annotation not found")
        queries = read_jhmdb_annotations(path)
        folders = {p.name: p.parent.name for p in (self.root / FRAMES_DIR).glob("*/*") if p.is_dir()}
        samples, unmasked = [], 0
        for video, sentence in queries.items():
            if video not in folders:
                raise DatasetError(f"{path}: no frame folder {FRAMES_DIR}/<action>/{video}")
            action = folders[video]
            count = len(list((self.root / FRAMES_DIR / action / video).glob("*.png")))
            masked = len(read_puppet_mask(self.root / MASKS_DIR / action / video / MASK_FILE))
            unmasked += max(count - masked, 0)
            samples += [JHMDBSample(video, action, t, count, sentence, f"{path}: {video}")
                        for t in range(1, min(count, masked) + 1)]
        if unmasked:
            log.warning("J-HMDB Sentences: %d frame(s) past their video's puppet mask left out", unmasked)
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def sentences(self) -> list[str]:
        return [s.sentence for s in self.samples]

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any]]:
        s = self.samples[index]
        mat = self.root / MASKS_DIR / s.action / s.video / MASK_FILE
        masks = read_puppet_mask(mat)
        if s.frame > len(masks):
            raise DatasetError(f"{mat}: {len(masks)} mask frame(s), fewer than frame {s.frame} of {s.video}")
        folder = self.root / FRAMES_DIR / s.action / s.video
        indices = clip_indices(s.frame - 1, s.num_frames, self.num_frames, self.frame_step)
        frames = np.stack([read_rgb(folder / f"{i + 1:05d}.png") for i in indices])
        mask = masks[s.frame - 1]
        if frames.shape[1:3] != mask.shape:
            raise DatasetError(f"{mat}: mask {mask.shape} does not match the frames {frames.shape[1:3]} in {folder}")
        return frames, mask, s.sentence, {"video": s.video, "frame": s.frame, "instance": 0, "source": s.source}


class JHMDBSentencesDataModule(ZooDataModule):
    """J-HMDB Sentences for ``zoo test`` / ``zoo benchmark jhmdb-sentences`` (no training split)."""

    collate_fn = staticmethod(collate_clips)

    def __init__(
        self,
        root: str = "data/synthetic/jhmdb_sentences",
        samples: str = "three",
        metadata: str | None = None,
        num_frames: int = 16,
        frame_step: int = 1,
        input_size: int = 512,
        modality: str = "rgb",
        batch_size: int = 8,
        num_workers: int = 2,
        on_error: str = "raise",
        seed: int = 0,
        pin_memory: bool = True,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, pin_memory)
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        hp = self.hparams
        self.val_set = self.test_set = JHMDBSentences(hp.root, hp.samples, hp.metadata, hp.num_frames,
                                                      hp.frame_step, hp.input_size, hp.on_error, hp.modality)

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.test_set, train=False)
