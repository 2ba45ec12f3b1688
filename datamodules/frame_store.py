"""A prepared low-resolution frame store: every frame of every listed video decoded once, resized, and
kept as ``<store>/<relative path>.npy`` (uint8, T x H x W x 3), read by memory map. Questions and clips
are then built without decoding: the loader feeds the GPU instead of the video codec limiting it.

``zoo prepare ucf101 --root R --out S`` builds it (resumable: finished videos are kept); datamodules
take ``frame_store=S``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datamodules.text import read_text
from datamodules.video import VideoReader, open_video
from zoo.errors import VideoReadError, parse_error

log = logging.getLogger(__name__)

META = "frame_store.json"


class FrameStoreReader(VideoReader):
    """Frames of one video from the store; resized on read when ``size`` differs from the stored size."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | None = None) -> None:
        super().__init__(path, size)
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: not in the frame store")
        try:
            self._frames = np.load(self.path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise VideoReadError(f"{self.path}: unreadable frame store file ({e})") from None
        if self._frames.ndim != 4 or self._frames.shape[-1] != 3 or self._frames.dtype != np.uint8:
            got = f"{self._frames.dtype} {self._frames.shape}"
            raise VideoReadError(f"{self.path}: expected uint8 (T, H, W, 3), got {got}")

    def __len__(self) -> int:
        return int(self._frames.shape[0])

    @property
    def fps(self) -> float:
        meta = self.path.parent.parent / META
        return float(read_meta(meta).get("fps", 25.0)) if meta.is_file() else 25.0

    def _read(self, indices: np.ndarray) -> np.ndarray:
        frames = np.asarray(self._frames[indices])
        if self.size is not None and tuple(frames.shape[1:3]) != tuple(self.size):
            h, w = self.size
            frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        return frames


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """A store's ``frame_store.json``; bytes that are not UTF-8, text that is not a JSON object, or an ``fps``
    that is not a positive finite number are an error at ``file:line``."""
    path = Path(path)
    text = read_text(path)
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise parse_error(path, e.lineno, f"not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(meta, dict):
        raise parse_error(path, 1, f"expected a JSON object, got {type(meta).__name__}")
    fps = meta.get("fps", 25.0)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        line_no = text.count("\n", 0, max(text.find('"fps"'), 0)) + 1
        raise parse_error(path, line_no, f"fps must be a positive finite number, got {fps!r}")
    return meta


def _atomic_save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _prepare_one(args: tuple[str, str, str, tuple[int, int], str]) -> tuple[str, str | None]:
    root, out, rel, size, backend = args
    target = Path(out) / (rel + ".npy")
    if target.is_file():
        return rel, None
    try:
        with open_video(Path(root) / rel, backend=backend, size=size) as video:
            frames = video.get_frames(np.arange(len(video)))
    except VideoReadError as e:
        return rel, str(e)
    _atomic_save(target, np.ascontiguousarray(frames))
    return rel, None


def prepare_frame_store(
    videos: list[str],
    root: str | os.PathLike,
    out: str | os.PathLike,
    size: tuple[int, int] = (128, 171),
    backend: str = "decord",
    workers: int = 2,
) -> tuple[int, list[str]]:
    """Decode ``videos`` (paths relative to ``root``) into the store at ``out``; returns (number stored, failures).

    Videos already stored are kept, so an interrupted run resumes. Undecodable videos are logged and listed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"size": list(size), "backend": backend}
    meta_path = out / META
    if meta_path.is_file() and read_meta(meta_path).get("size") != list(size):
        raise VideoReadError(f"{meta_path}: store was built at another size; use a new folder")
    meta_path.write_text(json.dumps(meta))
    jobs = [(str(root), str(out), rel, tuple(size), backend) for rel in videos]
    failed: list[str] = []
    done = 0
    from tqdm import tqdm

    with ProcessPoolExecutor(max_workers=max(workers, 1)) as pool:
        results = pool.map(_prepare_one, jobs, chunksize=4)
        for rel, error in tqdm(results, total=len(jobs), desc="zoo prepare", unit="video", leave=False,
                               disable=not sys.stderr.isatty()):
            if error:
                failed.append(rel)
                log.warning("not stored: %s", error)
            else:
                done += 1
    return done, failed
