"""Running a per-frame action detector over a dataset's test videos in Lightning's test loop
(``zoo.benchmark.runner``), for ``zoo benchmark ucf101-24|jhmdb|ucfsports --checkpoint/--model``.

**A detector** for ``--checkpoint`` / ``--model``, the interface the benchmark calls (what the zoo's
detectors implement): a ``torch.nn.Module`` with ``input_size`` (an int S for S x S, or ``(H, W)``) and
``modality`` (``rgb``, ``flow`` or ``rgb+flow``), attributes or else keys of its ``hparams`` (optional
``hparams.flow_folder``, default ``fastOF-images`` for UCF101-24, ``FlowBrox04`` for the ACT layout), and a method
``detect(images, flows) -> list[np.ndarray | Tensor]``: ``images`` a float32 tensor (B, 3, H, W) of RGB frames
resized to ``input_size`` (values 0..255, the detector normalises), ``flows`` the flow images alike (or None when
``modality`` is ``rgb``; ``images`` is None when it is ``flow``); it returns per image a (K, 6) array of rows
``label, score, x1, y1, x2, y2``, 0-based labels, boxes in pixels of the H x W input. The benchmark scales
boxes back to the frame's own size and writes one ``<video>.csv`` per video (rows
``frame,label,score,x1,y1,x2,y2``) atomically in a folder keyed by the run's identity, so a rerun resumes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from datamodules.action_tubes import TubeAnnotations
from datamodules.detection_frames import DetectionFrames, FrameLayout, FrameSample
from datamodules.ssd_transforms import SSDResize
from zoo.benchmark.detection_files import read_result, result_bytes
from zoo.benchmark.runner import BenchmarkModule, ResultStore, identity_key, run_identity, run_test_loop
from zoo.errors import DatasetError, VideoReadError

log = logging.getLogger(__name__)


def detector_settings(model: Any) -> dict[str, Any]:
    """``input_size`` (square, pixels), ``modality`` and ``flow_folder`` from a detector's hparams; a model that is
    not a detector is a ValueError saying what it lacks."""
    from datamodules.detection_frames import INPUTS

    if not callable(getattr(model, "detect", None)):
        raise ValueError(f"{type(model).__name__} is not a detector: it has no detect(images, flows) method "
                         "(zoo.benchmark.detector_run gives the interface)")
    hp = getattr(model, "hparams", {}) or {}
    size = getattr(model, "input_size", None) or hp.get("input_size")
    if isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"{type(model).__name__}: hparams.input_size must be a square size S or (S, S), not {size!r}")
    modality = getattr(model, "modality", None) or hp.get("modality", "rgb")
    if modality not in INPUTS:
        raise ValueError(f"{type(model).__name__}: hparams.modality must be one of {', '.join(INPUTS)}, "
                         f"not {modality!r}")
    return {"input_size": size, "modality": modality,
            "flow_folder": getattr(model, "flow_folder", None) or hp.get("flow_folder")}


def _result_name(video: str) -> str:
    """A video's result file name (UCF101-24's ``Class/video`` becomes ``Class__video``: one flat folder)."""
    return video.replace("/", "__")


def _frames_ext(root: Path, folder: str, video: str) -> str:
    """``jpg`` or ``png``: what the first frame of ``video`` is stored as (J-HMDB's ACT frames are PNG)."""
    for ext in ("jpg", "png"):
        if (root / folder / video / f"00001.{ext}").is_file():
            return ext
    raise DatasetError(f"{root / folder / video}/00001.jpg: frame image not found (nor .png)")


class RunFrames(DetectionFrames):
    """The frames a detector runs over, resized to ``size``: a frame that cannot be read (missing or corrupt file)
    gives a blank item marked ``missing`` (its error, one line naming the file) instead of stopping the run, so
    the video's result stays complete; that frame gets no detections and is counted."""

    def __init__(self, layout: FrameLayout, samples: Sequence[FrameSample], size: int, inputs: str) -> None:
        super().__init__(layout, samples, SSDResize(size), inputs)
        self.size = size

    def load(self, index: int) -> dict[str, Any]:
        try:
            return {**super().load(index), "missing": ""}
        except VideoReadError as e:
            s = self.samples[index]
            blank = torch.zeros(3, self.size, self.size)
            item = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "video": s.video,
                    "frame": s.frame, "size": (self.size, self.size), "index": index, "missing": str(e)}
            return {**item, **{k: blank for k in self.inputs.split("+")}}


class DetectionBenchmark(BenchmarkModule):
    """Runs a detector over the frames of one video after another (``batch_size`` frames per batch), scales its
    boxes to the frame's size and writes the video's result file when its last frame is done."""

    def __init__(self, model: Any, store: ResultStore, num_frames: Mapping[str, int], input_size: int,
                 num_classes: int) -> None:
        super().__init__(store)
        # a rank whose share of the videos is empty (a resumed run with fewer videos left than ranks) skips the loop
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.model, self.num_frames, self.input_size = model, dict(num_frames), input_size
        self.num_classes = num_classes
        self.pending: dict[str, list[np.ndarray]] = {}
        self.done_frames: dict[str, int] = {}
        self.missing: list[str] = []  # frames that could not be read (this rank's)

    def _check(self, det: Any, video: str, frame: int) -> np.ndarray:
        if hasattr(det, "detach"):
            det = det.detach().float().cpu().numpy()
        det = np.asarray(det, dtype=np.float64)
        if det.size == 0:
            return np.zeros((0, 6))
        if det.ndim != 2 or det.shape[1] != 6 or not np.isfinite(det).all():
            raise ValueError(f"detect() gave {video} frame {frame} an array of shape {list(det.shape)}; expected "
                             "finite (K, 6) rows label, score, x1, y1, x2, y2")
        labels = det[:, 0]
        if ((labels != np.round(labels)) | (labels < 0) | (labels >= self.num_classes)).any():
            raise ValueError(f"detect() gave {video} frame {frame} a label outside 0..{self.num_classes - 1}")
        return det

    def _detect(self, batch: dict[str, Any]) -> list[Any]:
        """The detector's output for each image of the batch (none for an unreadable frame, which it never sees)."""
        keep = [i for i, missing in enumerate(batch["missing"]) if not missing]
        if not keep:
            return [np.zeros((0, 6))] * len(batch["missing"])
        part = [batch[k][keep] if batch.get(k) is not None and len(keep) < len(batch["missing"]) else batch.get(k)
                for k in ("rgb", "flow")]
        amp = self.device.type == "cuda"
        if amp:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = self.model.detect(*part)
        if amp:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t0
        if len(out) != len(keep):
            raise ValueError(f"detect() returned {len(out)} results for {len(keep)} images")
        full: list[Any] = [np.zeros((0, 6))] * len(batch["missing"])
        for i, det in zip(keep, out):
            full[i] = det
        return full

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self._detect(batch)
        for det, video, frame, (h, w), missing in zip(out, batch["video"], batch["frame"], batch["size"],
                                                      batch["missing"]):
            if missing:
                log.warning("no detections for %s frame %d: %s", video, int(frame), missing)
                self.missing.append(missing)
            det = self._check(det, video, int(frame))
            scale = np.array([w, h, w, h], dtype=np.float64) / self.input_size
            rows = np.column_stack([np.full(len(det), float(frame)), det[:, :2], det[:, 2:6] * scale])
            self.pending.setdefault(video, []).append(rows)
            self.done_frames[video] = self.done_frames.get(video, 0) + 1
            self.frames += 1
            if self.done_frames[video] == self.num_frames[video]:
                table = np.concatenate(self.pending.pop(video))
                self.store.write(_result_name(video), result_bytes(table))
                self.ran += 1

    def on_test_epoch_end(self) -> None:
        """No collective (a rank with no videos never runs the loop): counts stay per rank (the reported speed is
        rank 0's) and results are read back from the files."""


class _VideoChunks(Sampler[list[int]]):
    def __init__(self, chunks: list[list[int]]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


class DetectionTestData(pl.LightningDataModule):
    """The frames of the videos still to run, this rank's share of the videos (each video whole on one rank),
    in batches of ``batch_size`` frames of one video."""

    def __init__(self, dataset: Any, groups: list[list[int]], batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.dataset, self.groups, self.batch_size, self.num_workers = dataset, groups, batch_size, num_workers

    def test_dataloader(self) -> DataLoader:
        from datamodules.detection_frames import collate_detections

        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        chunks = [g[i : i + self.batch_size] for g in self.groups[rank::world] for i in range(0, len(g),
                                                                                              self.batch_size)]
        return DataLoader(self.dataset, batch_sampler=_VideoChunks(chunks), collate_fn=collate_detections,
                          num_workers=self.num_workers, pin_memory=torch.cuda.is_available())


def benchmark_detector(
    model: Any,
    root: str | os.PathLike,
    annotations: TubeAnnotations,
    videos: Sequence[str],
    results_dir: str | os.PathLike,
    protocol: dict[str, Any],
    frames_folder: str = "rgb-images",
    flow_folder: str | None = None,
    batch_size: int = 16,
    num_workers: int = 2,
    **trainer_kwargs: Any,
) -> dict[str, Any] | None:
    """Run ``model`` (the module docstring's detector interface) over every frame of ``videos`` in Lightning's
    test loop (DDP: videos split across ranks) and return, on rank 0, ``{"detections": {video: (M, 7)}, "meta"}``
    (None on other ranks). One result file per video in ``results_dir``, keyed by the run's identity (the model's
    weights and settings plus ``protocol``); a rerun skips the videos already written."""
    from datamodules.detection_frames import FrameLayout, all_frames, check_flow_folders

    settings = detector_settings(model)
    if not videos:
        raise DatasetError(f"{annotations.source}: no test videos to run the detector on")
    flow_folder = flow_folder or settings["flow_folder"] or "fastOF-images"
    root = Path(root)
    modality = settings["modality"].split("+")
    rgb_ext = _frames_ext(root, frames_folder, videos[0]) if "rgb" in modality else "jpg"
    flow_ext = _frames_ext(root, flow_folder, videos[0]) if "flow" in modality else "jpg"
    layout = FrameLayout(root, frames_folder, rgb_ext, flow_folder, flow_ext)
    identity = run_identity(model, **protocol, frames_folder=frames_folder,
                            flow_folder=flow_folder if "flow" in modality else None)
    store = ResultStore(results_dir, identity, suffix=".csv")
    store.check()
    num_classes = len(annotations.classes)
    nframes = {v: annotations.videos[v].num_frames for v in videos}
    done = {v: read_result(store.path(_result_name(v)), nframes[v], num_classes) for v in videos}
    todo = [v for v in videos if done[v] is None]
    if "flow" in modality:  # a flow folder missing frames or of another size is one error naming the video
        check_flow_folders(layout, annotations, todo)
    samples = all_frames(annotations, todo)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.video, []).append(i)
    dataset = RunFrames(layout, samples, settings["input_size"], settings["modality"])
    module = DetectionBenchmark(model, store, nframes, settings["input_size"], num_classes)
    if todo:
        data = DetectionTestData(dataset, [groups[v] for v in todo], batch_size, num_workers)
        if not run_test_loop(module, data, use_distributed_sampler=False, **trainer_kwargs):
            return None
    elif int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) != 0:
        return None
    detections = {}
    for v in videos:
        table = done[v] if done[v] is not None else read_result(store.path(_result_name(v)), nframes[v], num_classes)
        if table is None:
            raise DatasetError(f"{store.path(_result_name(v))}: result file missing or damaged (the run did not "
                               "finish)")
        detections[v] = table
    meta = {"results_dir": str(store.folder), "run_identity": identity_key(identity),
            "resumed_videos": len(videos) - len(todo), "ran_videos": len(todo),
            "frames_per_second_rank0": module.frames / module.seconds if module.seconds else None,
            "unreadable_frames_rank0": len(module.missing)}
    return {"detections": detections, "meta": meta}
