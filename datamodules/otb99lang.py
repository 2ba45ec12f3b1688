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

import cv2
import numpy as np
import torch

from datamodules.base import ZooDataModule
from datamodules.otb import OTBDataModule, OTBSequences, lookup
from datamodules.text import read_text
from datamodules.video import read_rgb
from zoo.errors import DatasetError

VIDEOS_DIR = "OTB_videos"
QUERY_DIRS = {"train": "OTB_query_train", "test": "OTB_query_test"}


def read_queries(root: str | os.PathLike, split: str = "test") -> dict[str, str]:
    """``{sequence: sentence}`` of one split; an empty query file, or one that is not UTF-8, is an error naming it."""
    if split not in QUERY_DIRS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    folder = Path(root) / QUERY_DIRS[split]
    if not folder.is_dir():
        raise DatasetError(f"{folder}: OTB99-lang query folder not found")
    queries = {}
    for path in sorted(folder.glob("*.txt")):
        sentence = " ".join(read_text(path).split())
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
        self, root: str | os.PathLike, split: str = "test", allow_missing: bool = False, subset: str = "otb100",
        names: list[str] | None = None,
    ) -> None:
        self.queries = read_queries(root, split)
        videos = Path(root) / VIDEOS_DIR
        if names is not None:  # only these sequences of the split; each must have a query
            unknown = [n for n in names if n not in self.queries]
            if unknown:
                raise DatasetError(f"{Path(root) / QUERY_DIRS[split]}: no query for {', '.join(unknown)} in the "
                                   f"{split} split (--sequences)")
            self.queries = {n: self.queries[n] for n in names}
        super().__init__(videos, subset, allow_missing=True, names=list(self.queries), require_names=False)
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
        names: list[str] | None = None,
    ) -> None:
        super().__init__(root, subset, allow_missing, names, batch_size, num_workers)
        self.split = split

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "test_set", None) is not None:  # listed and checked once
            return
        self.test_set = OTB99LangSequences(self.root, self.split, self.allow_missing, self.subset, self.names)


class GroundingFrames(torch.utils.data.Dataset):
    """Frames of OTB99-lang sequences with the target visible, for the lingual network:
    ``{"image": uint8 (3, S, S), "box": x1 y1 x2 y2 in input pixels, "sentence": str}``; every ``step``-th frame
    (``first_only``: the first frame, which the sentence describes), placed in the square input as
    ``zoo.lang_tracker.crops.fit_square`` says (``keep_aspect``: between zero padding)."""

    def __init__(self, sequences: OTB99LangSequences, input_size: int = 512, step: int = 1, first_only: bool = False,
                 keep_aspect: bool = True):
        self.input_size, self.keep_aspect = input_size, keep_aspect
        self.items: list[tuple[str, np.ndarray, str]] = []
        for i in range(len(sequences)):
            seq = sequences[i]
            boxes = seq["boxes"].numpy()
            frames = [0] if first_only else range(0, len(seq["frames"]), step)
            for t in frames:
                if t < len(boxes) and np.isfinite(boxes[t]).all() and (boxes[t][2:] > 0).all():
                    self.items.append((seq["frames"][t], boxes[t], seq["sentence"]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from zoo.lang_tracker.crops import fit_square

        path, box, sentence = self.items[index]
        image = read_rgb(path)
        s = self.input_size
        h, w = image.shape[:2]
        sx, sy, px, py = fit_square(h, w, s, self.keep_aspect)
        nh, nw, top, left = round(h * sy), round(w * sx), int(py), int(px)
        square = np.zeros((s, s, 3), np.uint8)
        square[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        xyxy = np.concatenate([box[:2], box[:2] + box[2:]]) * [sx, sy, sx, sy] + [px, py, px, py]
        return {
            "image": torch.from_numpy(square).permute(2, 0, 1).contiguous(),
            "box": torch.from_numpy(xyxy).float(),
            "frame_box": torch.from_numpy(box).float(),
            "sentence": sentence,
        }


class GroundingDataModule(ZooDataModule):
    """Training frames of the ``train`` split (every ``step``-th, or with ``first_only`` the first frames, which
    the sentences describe) and validation first frames of the ``test`` split, for the lingual specification
    network (Model I)."""

    def __init__(
        self,
        root: str,
        subset: str = "otb100",
        input_size: int = 512,
        step: int = 1,
        first_only: bool = False,
        keep_aspect: bool = True,
        batch_size: int = 8,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()

    def train_sentences(self) -> list[str]:
        return list(read_queries(self.hparams.root, "train").values())

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        train = OTB99LangSequences(hp.root, "train", allow_missing=True, subset=hp.subset)
        test = OTB99LangSequences(hp.root, "test", allow_missing=True, subset=hp.subset)
        self.train_set = GroundingFrames(train, hp.input_size, hp.step, hp.first_only, hp.keep_aspect)
        self.val_set = GroundingFrames(test, hp.input_size, first_only=True, keep_aspect=hp.keep_aspect)


class TrackingPairs(torch.utils.data.Dataset):
    """Frame pairs for the visual network as ``track_model/tracking_data_provider.py`` makes them: every ordered
    pair (i, j), i != j, of a sequence's frames (those with a valid box), ``{"exemplar": uint8 (3, E, E)
    (``exemplar_context`` times the target at frame i, centred), "search": uint8 (3, S, S) (``search_context``
    times the target at frame j, centred on it), "box": x, y, w, h of the target in search pixels}``. The
    official search crop is cut around frame j's own box, so the target always sits at its centre at the
    template's size and every pair has the same labels (``track_model/ov.txt``).

    ``max_gap``: only pairs at most that many frames apart (official: None, all). ``max_shift``: the search
    region moved at random by up to that fraction of its half size (official: 0, centred; the tiny preset's
    choice is 0.2, so that a small padded network cannot learn that the target is always in the middle).
    ``per_frame``: one pair per frame instead, with a later frame within ``max_gap`` (drawn at random, or from
    the index when ``deterministic``): the small fixed validation set.
    """

    def __init__(self, sequences: OTBSequences, exemplar_size: int = 264, search_size: int = 352,
                 exemplar_context: float = 3.0, search_context: float = 4.0, max_gap: int | None = None,
                 max_shift: float = 0.0, per_frame: bool = False, deterministic: bool = False) -> None:
        if max_gap is not None and max_gap < 1:
            raise ValueError(f"max_gap must be at least 1 frame (or None: all pairs), not {max_gap}")
        if not 0.0 <= max_shift <= 1.0:
            raise ValueError(f"max_shift must lie in [0, 1] (a fraction of the search region's half size), "
                             f"not {max_shift}")
        self.seqs = [sequences[i] for i in range(len(sequences))]
        self.e, self.s, self.ec, self.sc = exemplar_size, search_size, exemplar_context, search_context
        self.max_gap, self.max_shift, self.per_frame, self.deterministic = max_gap, max_shift, per_frame, deterministic
        self.valid = [np.flatnonzero([_valid(b) for b in seq["boxes"].numpy()]) for seq in self.seqs]
        # per sequence: explicit (i, j) frame pairs, or None for all m (m - 1) ordered pairs of its m valid frames
        self.pairs: list[np.ndarray | None] = []
        for seq, v in zip(self.seqs, self.valid):
            if per_frame:  # every frame with a box but the last
                t = v[v < len(seq["frames"]) - 1]
                self.pairs.append(np.stack([t, t], 1))
            elif max_gap is None:
                self.pairs.append(None)
            else:
                i, j = np.meshgrid(v, v, indexing="ij")
                near = (i != j) & (np.abs(i - j) <= max_gap)
                self.pairs.append(np.stack([i[near], j[near]], 1))
        sizes = [len(v) * (len(v) - 1) if p is None else len(p) for v, p in zip(self.valid, self.pairs)]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def pair(self, index: int) -> tuple[int, int, int]:
        """(sequence, frame i, frame j) of pair ``index`` (``per_frame``: j = i, the partner is drawn on loading)."""
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} of {len(self)}")
        s = int(np.searchsorted(self.offsets, index, side="right")) - 1
        r = index - int(self.offsets[s])
        if self.pairs[s] is not None:
            i, j = self.pairs[s][r]
            return s, int(i), int(j)
        v = self.valid[s]
        a, b = divmod(r, len(v) - 1)
        return s, int(v[a]), int(v[b + (b >= a)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        from zoo.lang_tracker.crops import crop_region

        rng = np.random.default_rng(index if self.deterministic else int(torch.randint(2**31, ())))
        s, t, u = self.pair(index)
        seq = self.seqs[s]
        boxes = seq["boxes"].numpy()
        if self.per_frame:
            v = self.valid[s]
            later = v[(v > t) & (v <= t + (self.max_gap or len(boxes)))]
            u = int(rng.choice(later)) if len(later) else t
        a, b = boxes[t], boxes[u]
        exemplar, _ = crop_region(read_rgb(seq["frames"][t]), a[:2] + a[2:] / 2, a[2:] * self.ec, self.e)
        region = b[2:] * self.sc
        centre = b[:2] + b[2:] / 2
        if self.max_shift:
            centre = centre + rng.uniform(-self.max_shift, self.max_shift, 2) * region / 2
        search, (sx, sy) = crop_region(read_rgb(seq["frames"][u]), centre, region, self.s)
        x0, y0 = centre - region / 2
        box = np.array([(b[0] - x0) * sx, (b[1] - y0) * sy, b[2] * sx, b[3] * sy])
        return {
            "exemplar": torch.from_numpy(exemplar).permute(2, 0, 1).contiguous(),
            "search": torch.from_numpy(search).permute(2, 0, 1).contiguous(),
            "box": torch.from_numpy(box).float(),
        }


def _valid(box: np.ndarray) -> bool:
    return bool(np.isfinite(box).all() and (box[2:] > 0).all())


class TrackingPairsDataModule(ZooDataModule):
    """``TrackingPairs`` of the ``train`` split for training (every ordered pair, as the official data provider;
    ``batch_size`` 10 as its ``N``) and a fixed one per frame of the ``test`` split for validation."""

    def __init__(
        self,
        root: str,
        subset: str = "otb100",
        exemplar_size: int = 264,
        search_size: int = 352,
        exemplar_context: float = 3.0,
        search_context: float = 4.0,
        max_gap: int | None = None,
        max_shift: float = 0.0,
        batch_size: int = 10,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        kw = dict(exemplar_size=hp.exemplar_size, search_size=hp.search_size, exemplar_context=hp.exemplar_context,
                  search_context=hp.search_context, max_gap=hp.max_gap, max_shift=hp.max_shift)
        self.train_set = TrackingPairs(OTB99LangSequences(hp.root, "train", True, hp.subset), **kw)
        self.val_set = TrackingPairs(OTB99LangSequences(hp.root, "test", True, hp.subset), per_frame=True,
                                     deterministic=True, **kw)
