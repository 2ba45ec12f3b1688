"""Odd-one-out questions and fine-tuning clips over UCF101 / HMDB51 (Fernando et al., CVPR 2017, Sec. 3-4).

A question has N + 1 elements, each W frames of one video: N in temporal order and one (the odd one)
with the same kind of frames in an order different from sorted; the odd element's position is uniform,
which is the same as permuting the positions at random. Each element's frames are drawn by one of
three strategies (Sec. 4.1): ``consecutive`` (W consecutive frames), ``constrained`` (W frames in order
from a window of ``window_factor * W`` consecutive frames) and ``random`` (W frames from the whole
video, sorted). Only the frames a question needs are decoded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from datamodules.action import SplitClasses, open_item, split_videos
from datamodules.base import SkippingDataset, ZooDataModule
from zoo.errors import VideoReadError

STRATEGIES = ("consecutive", "constrained", "random")


def element_indices(
    strategy: str, num_frames: int, frames: int, rng: np.random.Generator, window_factor: float = 1.5
) -> np.ndarray:
    """Sorted frame indices of one element (``frames`` distinct indices in ``[0, num_frames)``)."""
    if num_frames < frames:
        raise ValueError(f"a video of {num_frames} frames cannot give {frames} distinct frames")
    if strategy == "consecutive":
        start = int(rng.integers(num_frames - frames + 1))
        return np.arange(start, start + frames)
    if strategy == "constrained":
        window = min(max(int(round(window_factor * frames)), frames), num_frames)
        start = int(rng.integers(num_frames - window + 1))
        return start + np.sort(rng.choice(window, frames, replace=False))
    if strategy == "random":
        return np.sort(rng.choice(num_frames, frames, replace=False))
    raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")


def shuffled_order(frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(frames)`` other than the identity."""
    if frames < 2:
        raise ValueError("an odd element needs at least 2 frames")
    while True:
        order = rng.permutation(frames)
        if (order != np.arange(frames)).any():
            return order


def make_question(
    num_frames: int,
    elements: int = 6,
    frames: int = 6,
    strategy: str = "random",
    rng: np.random.Generator | None = None,
    window_factor: float = 1.5,
) -> tuple[np.ndarray, int]:
    """``(indices (elements, frames), odd)``: row ``odd`` holds its frames out of order, the others in order."""
    rng = rng if rng is not None else np.random.default_rng()
    rows = np.stack([element_indices(strategy, num_frames, frames, rng, window_factor) for _ in range(elements)])
    odd = int(rng.integers(elements))
    rows[odd] = rows[odd][shuffled_order(frames, rng)]
    return rows, odd


class _ActionVideos(SkippingDataset):
    """Videos of one split whose files exist (missing ones are logged and counted in ``missing``)."""

    def __init__(
        self,
        dataset: str,
        root: str | os.PathLike,
        split: int,
        train: bool,
        size: tuple[int, int],
        split_dir: str | os.PathLike | None,
        backend: str,
        frame_store: str | os.PathLike | None,
        on_error: str,
        repeats: int = 1,
    ) -> None:
        super().__init__(on_error)
        self.root = Path(root)
        self.classes, self.items, self.missing = split_videos(dataset, root, split, train, split_dir, frame_store)
        self.size, self.backend, self.frame_store = tuple(size), backend, frame_store
        self.train = train
        self.repeats = repeats

    def __len__(self) -> int:
        return len(self.items) * self.repeats

    def _rng(self, index: int) -> np.random.Generator:
        # training: drawn from torch, so seed_everything and worker seeding fix it; evaluation: fixed per item
        return np.random.default_rng(int(torch.randint(2**31, ())) if self.train else index)

    def item(self, index: int) -> tuple[str, int]:
        return self.items[index % len(self.items)]


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).contiguous()


class OddOneOutQuestions(_ActionVideos):
    """Items ``{"question": uint8 (N+1, W, 3, H, W), "label": odd position}``; a video shorter than W frames is
    an unreadable sample (skipped with ``on_error="skip"``)."""

    def __init__(
        self,
        dataset: str,
        root: str | os.PathLike,
        split: int = 1,
        train: bool = True,
        elements: int = 6,
        frames: int = 6,
        strategy: str = "random",
        window_factor: float = 1.5,
        size: tuple[int, int] = (227, 227),
        split_dir: str | os.PathLike | None = None,
        backend: str = "decord",
        frame_store: str | os.PathLike | None = None,
        on_error: str = "skip",
        repeats: int = 1,
    ) -> None:
        super().__init__(dataset, root, split, train, size, split_dir, backend, frame_store, on_error, repeats)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        self.elements, self.frames, self.strategy, self.window_factor = elements, frames, strategy, window_factor

    def load(self, index: int) -> dict[str, torch.Tensor | int]:
        rel, _ = self.item(index)
        rng = self._rng(index)
        with open_item(self.root, rel, self.size, self.backend, self.frame_store) as video:
            n = len(video)
            if n < self.frames:
                raise VideoReadError(f"{self.root / rel}: {n} frames, a question element needs {self.frames}")
            indices, odd = make_question(n, self.elements, self.frames, self.strategy, rng, self.window_factor)
            unique, inverse = np.unique(indices, return_inverse=True)
            frames = video.get_frames(unique)[inverse.reshape(indices.shape)]
        if self.train and rng.random() < 0.5:  # one flip for the whole question
            frames = frames[..., ::-1, :]
        return {"question": _to_tensor(frames), "label": odd}


class ActionClipStacks(_ActionVideos):
    """Labelled clips for fine-tuning: ``{"clips": uint8 (K, W, 3, H, W), "label": class}``.

    Each clip is one in-order element (same strategy as the questions). Training gives K = ``clips``
    (default 1) random clips; evaluation K clips from fixed seeds, whose softmax the model averages
    (video-level accuracy, Sec. 5.2).
    """

    def __init__(
        self,
        dataset: str,
        root: str | os.PathLike,
        split: int = 1,
        train: bool = True,
        frames: int = 6,
        strategy: str = "random",
        clips: int = 1,
        window_factor: float = 1.5,
        size: tuple[int, int] = (227, 227),
        split_dir: str | os.PathLike | None = None,
        backend: str = "decord",
        frame_store: str | os.PathLike | None = None,
        on_error: str = "skip",
    ) -> None:
        super().__init__(dataset, root, split, train, size, split_dir, backend, frame_store, on_error)
        self.frames, self.strategy, self.clips, self.window_factor = frames, strategy, clips, window_factor

    def load(self, index: int) -> dict[str, torch.Tensor | int]:
        rel, label = self.item(index)
        rng = self._rng(index)
        with open_item(self.root, rel, self.size, self.backend, self.frame_store) as video:
            n = len(video)
            if n < self.frames:
                raise VideoReadError(f"{self.root / rel}: {n} frames, a clip needs {self.frames}")
            indices = np.stack(
                [element_indices(self.strategy, n, self.frames, rng, self.window_factor) for _ in range(self.clips)]
            )
            unique, inverse = np.unique(indices, return_inverse=True)
            frames = video.get_frames(unique)[inverse.reshape(indices.shape)]
        if self.train and rng.random() < 0.5:
            frames = frames[..., ::-1, :]
        return {"clips": _to_tensor(frames), "label": label}


class _ActionDataModule(ZooDataModule):
    def _common(self) -> dict:
        hp = self.hparams
        return dict(
            dataset=hp.dataset, root=hp.root, split=hp.split, size=tuple(hp.size), split_dir=hp.split_dir,
            backend=hp.backend, frame_store=hp.frame_store, on_error=hp.on_error,
        )

    def test_dataloader(self):  # noqa: ANN201
        return self._loader(self.val_set, train=False)


class OddOneOutDataModule(_ActionDataModule):
    """Self-supervised O3N pretraining: questions from the training videos (labels unused; ``repeats``
    questions per video and epoch), validation questions (``val_repeats`` per video, fixed) from the test
    videos of the same split.

    ``on_device=True`` (needs ``frame_store``) builds the training questions on the accelerator from the
    store held in its memory (``datamodules.frame_bank``): the loader ships video indices only.
    """

    def __init__(
        self,
        root: str,
        dataset: str = "ucf101",
        split: int = 1,
        elements: int = 6,
        frames: int = 6,
        strategy: str = "random",
        window_factor: float = 1.5,
        repeats: int = 1,
        val_repeats: int = 1,
        size: tuple[int, int] = (227, 227),
        split_dir: str | None = None,
        backend: str = "decord",
        frame_store: str | None = None,
        on_device: bool = False,
        on_error: str = "skip",
        batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()
        if on_device and not frame_store:
            raise ValueError("on_device needs a frame_store (zoo prepare)")
        self.bank = None

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        q = dict(elements=hp.elements, frames=hp.frames, strategy=hp.strategy, window_factor=hp.window_factor)
        self.train_set = OddOneOutQuestions(train=True, repeats=hp.repeats, **q, **self._common())
        self.val_set = OddOneOutQuestions(train=False, repeats=hp.val_repeats, **q, **self._common())
        if hp.on_device:
            self.train_items = self.train_set.items
            self.train_set = _VideoIndices(len(self.train_items), hp.repeats)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if not (self.hparams.on_device and "video" in batch):
            return batch
        from datamodules.frame_bank import FrameBank, sample_questions

        hp = self.hparams
        device = batch["video"].device
        if self.bank is None:
            self.bank = FrameBank(hp.frame_store, [rel for rel, _ in self.train_items], device)
        questions, odd, _ = sample_questions(
            self.bank, batch["video"], hp.elements, hp.frames, hp.strategy, hp.window_factor
        )
        flip = torch.rand(len(odd), device=device) < 0.5  # one flip per question
        questions = torch.where(flip[:, None, None, None, None, None], questions.flip(-1), questions)
        return {"question": questions, "label": odd}


class _VideoIndices(torch.utils.data.Dataset):
    """``{"video": i}`` for each of ``n`` videos, ``repeats`` times: what the loader ships when questions are
    built on the device."""

    def __init__(self, n: int, repeats: int) -> None:
        self.n, self.repeats = n, repeats

    def __len__(self) -> int:
        return self.n * self.repeats

    def __getitem__(self, index: int) -> dict[str, int]:
        return {"video": index % self.n}


class ActionClipsDataModule(SplitClasses, _ActionDataModule):
    """Supervised fine-tuning on a labelled split: ``train_clips`` clips per training video, ``test_clips``
    per test video (video-level accuracy). ``train_fraction`` keeps that share of each class's training
    videos (small labelled splits)."""

    def __init__(
        self,
        root: str,
        dataset: str = "ucf101",
        split: int = 1,
        frames: int = 6,
        strategy: str = "random",
        window_factor: float = 1.5,
        train_clips: int = 1,
        test_clips: int = 10,
        train_fraction: float = 1.0,
        size: tuple[int, int] = (227, 227),
        split_dir: str | None = None,
        backend: str = "decord",
        frame_store: str | None = None,
        on_error: str = "skip",
        batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()

    @property
    def clip_sampling(self) -> dict:
        """The settings a classifier needs to cut clips as this datamodule does (recorded in its checkpoint)."""
        hp = self.hparams
        return {"size": list(hp.size), "strategy": hp.strategy, "window_factor": float(hp.window_factor)}

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        c = dict(frames=hp.frames, strategy=hp.strategy, window_factor=hp.window_factor)
        self.train_set = ActionClipStacks(train=True, clips=hp.train_clips, **c, **self._common())
        if hp.train_fraction < 1.0:
            self.train_set.items = keep_fraction(self.train_set.items, hp.train_fraction, hp.seed)
        self.val_set = ActionClipStacks(train=False, clips=hp.test_clips, **c, **self._common())


def keep_fraction(items: list[tuple[str, int]], fraction: float, seed: int) -> list[tuple[str, int]]:
    """A seeded ``fraction`` of each class's items (at least one per class), in the original order."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(items):
        by_class.setdefault(label, []).append(i)
    keep = set()
    for members in by_class.values():
        k = max(1, int(round(fraction * len(members))))
        keep.update(rng.choice(members, k, replace=False).tolist())
    return [item for i, item in enumerate(items) if i in keep]
