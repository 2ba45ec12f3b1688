"""Running a tracker over OTB or OTB99-lang in Lightning's test loop (``zoo.benchmark.runner``).

Each sequence's result file (``<Seq>.txt``, ``x,y,w,h`` per frame) and its timing file
(``times/<Seq>_time.txt``) are written atomically as the sequence finishes, in a folder keyed by the run's
identity (``run.json``: the weights, the tracker's settings, the dataset and the convention); a rerun of the
same identity skips the sequences already written, so an interrupted benchmark resumes, and a rerun of
another identity into the same folder is refused. Under DDP the sequences are split across ranks.
``batch_size`` sequences advance in lockstep through ``Tracker.update_batch`` (one forward pass per step for
all of them). Speed is total frames over total tracking time: image decoding is excluded and CUDA is
synchronised before each clock read.

A tracker of your own runs the same way: subclass ``zoo.tracking.base.Tracker`` (``init(image, box)``,
``update(image) -> box``) and call ``benchmark_otb(MyTracker(), root, out_dir)``.

The first frame: a tracker is given the ground-truth box and, as the OTB toolkit does, scored on it. A language
tracker that starts from the sentence (``needs_sentence`` and ``needs_box = False``: Models I, II and III on
OTB99-lang) is not given it; the run records that (``"first_box": "tracker"`` in ``run.json``) and is scored
on the first box it found, however wrong (``zoo.benchmark.otb.score_results``).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.otb import OTBDataModule, format_boxes, read_boxes
from datamodules.otb99lang import VIDEOS_DIR, OTB99LangDataModule
from datamodules.video import read_rgb
from zoo.benchmark.otb import report_dir, score_results, write_report
from zoo.benchmark.runner import BenchmarkModule, ResultStore, run_identity, run_test_loop
from zoo.errors import DatasetError
from zoo.metrics.otb import OTBMetrics, get_convention
from zoo.tracking.base import Tracker, as_tracker

log = logging.getLogger(__name__)


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class TrackerBenchmark(BenchmarkModule):
    """Wraps a Tracker for ``trainer.test``: tracks each batch of sequences and writes their results."""

    def __init__(self, tracker: Tracker, store: ResultStore, convention: str = "otb", decode_workers: int = 4
                 ) -> None:
        super().__init__(store)
        self.tracker = tracker
        self.decode_workers = decode_workers  # threads reading the next frames while the tracker runs (0: none)
        self.wall_seconds = 0.0  # tracking wall time, reading the frames included
        self.results_dir = store.folder
        self.convention = get_convention(convention)
        self.gives_box = gives_first_box(tracker)
        # a tracker not given the first box is scored on its own
        self.metric = OTBMetrics(self.convention if self.gives_box else replace(self.convention, first_frame_gt=False))

    def _omit(self, seq: dict[str, Any]) -> int:
        return int(seq["init_omit"]) if self.convention.init_omit else 0

    def result_path(self, name: str) -> Path:
        return self.results_dir / f"{name}.txt"

    def completed_boxes(self, seq: dict[str, Any]) -> np.ndarray | None:
        """The boxes of a complete result file of ``seq`` (an earlier run's), else None."""
        path = self.result_path(seq["name"])
        if not path.is_file():
            return None
        boxes = read_boxes(path)
        return boxes if len(boxes) == len(seq["frames"]) - self._omit(seq) else None

    def test_step(self, batch: list[dict[str, Any]], batch_idx: int) -> None:
        done = {seq["name"]: self.completed_boxes(seq) for seq in batch}
        todo = [seq for seq in batch if done[seq["name"]] is None]
        self.resumed += len(batch) - len(todo)
        self.ran += len(todo)
        if todo:
            done.update(self._track(todo))
        for seq in batch:
            boxes = torch.from_numpy(done[seq["name"]])
            self.metric.update(boxes, seq["boxes"], init_omit=int(seq["init_omit"]))

    def _track(self, seqs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Track ``seqs`` in lockstep, write their files, return their boxes by name; the next step's frames are
        read by ``decode_workers`` threads while the tracker runs."""
        start = time.perf_counter()
        if self.decode_workers > 0:
            with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="frames") as pool:
                results = self._track_reading(seqs, lambda paths: [pool.submit(read_rgb, f) for f in paths])
        else:
            results = self._track_reading(seqs, lambda paths: paths)
        self.wall_seconds += time.perf_counter() - start
        return results

    def _track_reading(self, seqs: list[dict[str, Any]], reading: Any) -> dict[str, np.ndarray]:
        """``_track`` with ``reading(paths)``: futures of the decoded frames, or the paths to read there and then."""
        omits = [self._omit(s) for s in seqs]
        frames = [s["frames"][o:] for s, o in zip(seqs, omits)]
        first = [s["boxes"][o].numpy().astype(np.float64) for s, o in zip(seqs, omits)]
        steps = max(len(f) for f in frames)

        def step(t: int) -> list[Any]:  # frame t of each sequence still running, None for the others
            running = [k for k, f in enumerate(frames) if t < len(f)]
            out: list[Any] = [None] * len(frames)
            for k, item in zip(running, reading([frames[k][t] for k in running])):
                out[k] = item
            return out

        def decoded(items: list[Any]) -> list[np.ndarray | None]:
            return [None if i is None else i.result() if isinstance(i, Future) else read_rgb(i) for i in items]

        pending = step(0)
        images = decoded(pending)
        pending = step(1) if steps > 1 else []
        language = getattr(self.tracker, "needs_sentence", False)
        if language and any("sentence" not in s for s in seqs):
            raise DatasetError(f"{self.tracker.name} tracks from a sentence: benchmark it on OTB99-lang")
        _sync()
        t0 = time.perf_counter()
        given = first if self.gives_box else None
        if language:
            initial = self.tracker.init_batch(images, given, sentences=[s["sentence"] for s in seqs])
        else:
            initial = self.tracker.init_batch(images, given)
        _sync()
        dt = (time.perf_counter() - t0) / len(seqs)
        if initial is None and given is None:
            raise ValueError(f"{self.tracker.name} starts from the sentence but its init_batch returned no boxes")
        boxes = [[b] for b in (given if initial is None else initial)]
        times = [[dt] for _ in seqs]
        for t in range(1, steps):
            images = decoded(pending)
            pending = step(t + 1) if t + 1 < steps else []  # read while the tracker runs on frame t
            active = sum(im is not None for im in images)
            _sync()
            t0 = time.perf_counter()
            out = self.tracker.update_batch(images)
            _sync()
            dt = (time.perf_counter() - t0) / active
            for k, box in enumerate(out):
                if images[k] is not None:
                    boxes[k].append(np.asarray(box, dtype=np.float64))
                    times[k].append(dt)
        results = {}
        for seq, b, tm in zip(seqs, boxes, times):
            results[seq["name"]] = np.stack(b)
            self._write(seq["name"], results[seq["name"]], np.asarray(tm))
            self.frames += len(b)
            self.seconds += float(np.sum(tm))
        return results

    def _write(self, name: str, boxes: np.ndarray, times: np.ndarray) -> None:
        self.store.write(name, "".join(f"{t:.8f}\n" for t in times).encode(), suffix="_time.txt", sub="times")
        # the result file last: its presence means complete
        self.store.write(name, format_boxes(boxes).encode())

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        wall = torch.tensor(self.wall_seconds, dtype=torch.float64, device=self.device)
        self.wall_seconds = float(self.trainer.strategy.reduce(wall, reduce_op="sum"))
        scores = {f"otb/{k}": v.float() for k, v in self.metric.compute().items()}
        self.log_dict(scores, sync_dist=False)
        if self.seconds > 0:  # frames and seconds already summed over ranks
            self.log("otb/fps", self.frames / self.seconds, sync_dist=False)


def gives_first_box(tracker: Any) -> bool:
    """Whether the benchmark gives ``tracker`` the first frame's ground-truth box: always, except to a language
    tracker that starts from the sentence (``needs_sentence`` and ``needs_box`` False)."""
    return not (getattr(tracker, "needs_sentence", False) and not getattr(tracker, "needs_box", True))


def tracker_name(tracker: Any) -> str:
    name = getattr(tracker, "name", None)
    return name if isinstance(name, str) and name != "tracker" else type(tracker).__name__


def benchmark_otb(
    model: Any,
    root: str | os.PathLike,
    out_dir: str | os.PathLike = "runs/benchmark/otb",
    subset: str = "otb100",
    convention: str = "otb",
    allow_missing: bool = False,
    names: list[str] | None = None,
    batch_size: int = 1,
    name: str | None = None,
    dataset: str = "otb",
    split: str = "test",
    source: dict[str, Any] | None = None,
    decode_workers: int | None = None,
    **trainer_kwargs: Any,
) -> dict[str, Any] | None:
    """Track ``subset`` of the OTB dataset at ``root`` and score it; returns ``{name: performance}``
    on rank 0. Results go to ``out_dir/results/<name>/``, the report to ``out_dir/reports/<name>/<subset>/``.

    ``model`` is a zoo model or any ``Tracker``. The results folder is keyed by the run's identity (``source``,
    the weights' sha256, the tracker's settings, the data and the convention): a rerun resumes only what the same
    identity wrote, and another identity is refused (``RunClashError``). ``dataset="otb99lang"``: the ``split``
    sequences of OTB99-lang at ``root``, each with its sentence, which a language tracker gets at the start.
    ``decode_workers`` threads read the next frames while the tracker runs (default: 4 where CUDA is available,
    else 0, so that reading does not take the CPU from a tracker on it; a tracker with CPU work of its own, such as
    SINT+'s optical flow, may still be slowed); the report's ``speed_fps`` is the tracker's own time (decoding
    excluded, as the OTB toolkit), ``meta.fps_with_decoding`` the wall time of the sequences tracked in this run
    (reading, ``init``, updates and writing the result files), summed over ranks."""
    tracker = as_tracker(model)
    name = name or tracker_name(tracker)
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name must be a folder name, not {name!r}")
    out_dir = Path(out_dir)
    if dataset == "otb99lang":
        datamodule = OTB99LangDataModule(str(root), split, subset, allow_missing, batch_size=batch_size, names=names)
    elif dataset == "otb":
        datamodule = OTBDataModule(str(root), subset, allow_missing, names, batch_size=batch_size)
    else:
        raise DatasetError(f"unknown tracking benchmark {dataset!r}; choose otb or otb99lang")
    datamodule.setup("test")
    datamodule.test_set.ground_truth()  # a missing or malformed dataset is an error before anything is written
    protocol = {"dataset": dataset, "root": str(Path(root).resolve()), "convention": get_convention(convention).name,
                "frames": "folders" if subset == "folders" else "otb-table"}
    if dataset == "otb99lang":
        protocol["split"] = split
    if not gives_first_box(tracker):  # recorded, so that scoring keeps the tracker's own first box
        protocol["first_box"] = "tracker"
    identity = run_identity(tracker, source=source or {}, **protocol)
    store = ResultStore(out_dir / "results" / name, identity)
    store.check()
    if decode_workers is None:
        decode_workers = 4 if torch.cuda.is_available() else 0
    if decode_workers < 0:
        raise ValueError(f"decode_workers must be 0 or more, not {decode_workers}")
    module = TrackerBenchmark(tracker, store, convention, decode_workers)
    is_zero = run_test_loop(module, datamodule, **trainer_kwargs)
    if not is_zero:
        return None
    infos = datamodule.test_set.infos  # score exactly the sequences that ran
    score_root = Path(root) / VIDEOS_DIR if dataset == "otb99lang" else root
    performance = score_results(store.folder, root=score_root, subset=subset, convention=convention,
                                allow_missing=allow_missing, names=[info.name for info in infos])
    performance["meta"].update(resumed_sequences=module.resumed,
                               tracked_sequences=module.ran, dataset=dataset, decode_workers=decode_workers,
                               fps_with_decoding=module.frames / module.wall_seconds if module.wall_seconds else None)
    write_report({name: performance}, report_dir(out_dir, [name], performance["meta"]))
    return {name: performance}
