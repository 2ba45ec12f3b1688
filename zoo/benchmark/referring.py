"""Benchmarking actor-and-action segmentation from a sentence on A2D Sentences and J-HMDB Sentences
(Gavrilyuk et al., CVPR 2018, Sec. 5) in Lightning's test loop (``zoo.benchmark.runner``).

Samples are grouped by video; each video's result file (``<video>.json``: per sample its frame, instance,
sentence, intersection, union, ground-truth and predicted areas at the frame's own resolution, the score and the
predicted mask as COCO RLE) is written atomically when the video is done, in a folder keyed by the run's identity
(``run.json``). A rerun of the same identity skips the videos already written; under DDP the videos are split
across ranks. The scores (``zoo.metrics.referring``: P@0.5..0.9, mAP in the paper's and COCO's form, overall and
mean IoU) are computed from the result files, so a resumed run scores exactly as an uninterrupted one.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from datamodules.clips import ClipSampleDataset, collate_clips
from zoo.benchmark.runner import BenchmarkModule, ResultStore, read_identity, run_identity, run_test_loop
from zoo.errors import DatasetError
from zoo.hub import atomic_write_bytes
from zoo.metrics.referring import SUMMARY_COLUMNS, ReferringSegmentationMetrics


def clip_settings(model: Any) -> dict[str, Any]:
    """The clips a segmentation model reads: ``num_frames``, ``frame_step``, ``input_size`` and ``modality`` from its
    hyperparameters (an image model, such as the lingual network, reads one RGB frame)."""
    hp = model.hparams
    return {"num_frames": hp.get("num_frames", 1), "frame_step": hp.get("frame_step", 1),
            "input_size": hp["input_size"], "modality": hp.get("modality", "rgb")}


def video_groups(dataset: ClipSampleDataset) -> dict[str, list[int]]:
    """Sample indices by video, in the dataset's order."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(dataset.samples):
        groups.setdefault(s.video, []).append(i)
    return groups


class VideoBatches(Sampler[list[int]]):
    """One batch per video (its samples), for the videos given."""

    def __init__(self, groups: list[list[int]]) -> None:
        self.groups = groups

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)


class VideoData(pl.LightningDataModule):
    """The test loader of a benchmark: the videos not yet written, this rank's share of them."""

    def __init__(self, dataset: ClipSampleDataset, todo: list[list[int]], num_workers: int = 2) -> None:
        super().__init__()
        self.dataset, self.todo, self.num_workers = dataset, todo, num_workers

    def test_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return DataLoader(self.dataset, batch_sampler=VideoBatches(self.todo[rank::world]), collate_fn=collate_clips,
                          num_workers=self.num_workers, pin_memory=torch.cuda.is_available())


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """A result file's predicted mask as bool (H, W)."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


class SegmentationBenchmark(BenchmarkModule):
    """Runs a referring-segmentation model over one video's samples per batch (``chunk`` clips per forward pass,
    bf16 autocast on CUDA) and writes the video's result file."""

    def __init__(self, model: torch.nn.Module, store: ResultStore, chunk: int = 8) -> None:
        super().__init__(store)
        # a rank whose share of the videos is empty (a resumed run with fewer videos left than ranks) skips the loop
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.model, self.chunk = model, chunk

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        amp = self.device.type == "cuda"
        if amp:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        probs = []
        for i in range(0, len(batch["sentence"]), self.chunk):
            flow = batch["flow"][i : i + self.chunk] if "flow" in batch else None
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                p = self.model.segment(batch["clip"][i : i + self.chunk], batch["sentence"][i : i + self.chunk],
                                       batch["source"][i : i + self.chunk], flow)
            probs += self.model.full_size(p.float(), [tuple(g.shape) for g in batch["gt"][i : i + self.chunk]])
        if amp:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t0
        threshold = self.model.hparams.get("threshold", 0.5)
        samples = []
        for k, prob in enumerate(probs):
            above = prob > threshold
            pred, gt = above.cpu(), batch["gt"][k].bool().cpu()
            score = float(prob[above].mean()) if pred.any() else 0.0
            samples.append({
                "index": int(batch["index"][k]), "frame": int(batch["frame"][k]),
                "instance": int(batch["instance"][k]), "sentence": batch["sentence"][k],
                "intersection": int((pred & gt).sum()), "union": int((pred | gt).sum()),
                "gt_area": int(gt.sum()), "pred_area": int(pred.sum()), "score": score, "mask": _rle(pred.numpy()),
            })
        video = batch["video"][0]
        self.store.write(video, json.dumps({"video": video, "samples": samples}).encode())
        self.ran += 1
        self.frames += len(samples)

    def on_test_epoch_end(self) -> None:
        """No collective: a rank whose share of the videos is empty never runs the test loop (Lightning skips an
        empty loader), so counts stay per rank (rank 0's speed is reported) and results are read from the files."""


RESULT_KEYS = ("index", "intersection", "union", "gt_area", "score")


def read_result(path: Path, indices: list[int]) -> list[dict[str, Any]] | None:
    """The samples of one video's result file if it is complete for the sample ``indices``, else None (a missing,
    corrupt, partial or stale file: the video is run again)."""
    try:
        samples = json.loads(path.read_bytes())["samples"]
        if sorted(int(s["index"]) for s in samples) == sorted(indices) and all(
                all(k in s for k in RESULT_KEYS) for s in samples):
            return samples
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def read_results(store: ResultStore, groups: dict[str, list[int]],
                 done: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Every sample of the videos' result files (``done``: those already read); a missing or incomplete file is a
    DatasetError naming it."""
    samples = []
    for video, indices in groups.items():
        found = (done or {}).get(video) or read_result(store.path(video), indices)
        if found is None:
            raise DatasetError(f"{store.path(video)}: result file missing or incomplete (the run did not finish)")
        samples += found
    return samples


def score(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The paper's table (P@0.5..0.9, mAP, overall IoU, mean IoU; fractions) and COCO-style mAP from result
    samples."""
    metric = ReferringSegmentationMetrics(map_variant="paper")
    metric.update_counts([s["intersection"] for s in samples], [s["union"] for s in samples],
                         [s["gt_area"] for s in samples], [s["score"] for s in samples],
                         [s["index"] for s in samples])
    out = metric.compute()
    return {"summary": out["summary"], "map_coco": float(out["map_coco"]), "map_paper": float(out["map_paper"]),
            "coco_stats": [float(v) for v in out["coco_stats"]], "ious": dict(zip(out["ids"], out["ious"]))}


def format_table(name: str, scores: dict[str, Any], count: int) -> str:
    """The paper's columns in percent, plus COCO-style mAP."""
    head = ["model", *[c.replace("overall_iou", "oIoU").replace("mean_iou", "mIoU") for c in SUMMARY_COLUMNS],
            "mAP(COCO)"]
    values = [100 * scores["summary"][c] for c in SUMMARY_COLUMNS] + [100 * scores["map_coco"]]
    width = max(len(name), 18)
    lines = [f"{head[0]:<{width}}" + "".join(f"{h:>10}" for h in head[1:]),
             f"{name:<{width}}" + "".join(f"{v:>10.1f}" for v in values),
             f"({count} samples; mAP: the paper's, mean of P@0.50:0.05:0.95; mAP(COCO): pycocotools, as MTTR)"]
    return "\n".join(lines)


def draw_samples(dataset: ClipSampleDataset, samples: list[dict[str, Any]], path: Path, count: int = 6) -> Path:
    """A picture of ``count`` samples (spread over the set): the annotated frame, the sentence, the true mask
    (green outline) and the predicted one (red fill), with the sample's IoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = [samples[i] for i in np.linspace(0, len(samples) - 1, min(count, len(samples))).astype(int)]
    fig, axes = plt.subplots(1, len(picked), figsize=(3.2 * len(picked), 3.4), squeeze=False)
    for ax, s in zip(axes[0], picked):
        frames, gt, _, _ = dataset.read(s["index"])
        frame = frames[len(frames) // 2]
        pred = decode_rle(s["mask"])
        overlay = frame.astype(np.float32)
        overlay[pred] = 0.5 * overlay[pred] + 0.5 * np.array([230, 40, 40])
        ax.imshow(overlay.astype(np.uint8))
        ax.contour(gt, levels=[0.5], colors=["lime"], linewidths=1.2)
        iou = s["intersection"] / s["union"] if s["union"] else 1.0
        ax.set_title(f"{s['sentence'][:38]}\nIoU {iou:.2f}", fontsize=8)
        ax.axis("off")
    fig.suptitle("red: predicted mask, green: ground truth", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def benchmark_referring(
    model: Any,
    dataset: ClipSampleDataset,
    out_dir: str | os.PathLike,
    name: str,
    protocol: dict[str, Any],
    chunk: int = 8,
    num_workers: int = 2,
    **trainer_kwargs: Any,
) -> dict[str, Any] | None:
    """Segment every sample of ``dataset`` with ``model`` and score it; on rank 0 returns the report (also written
    to ``out_dir/reports/<name>/<dataset>/performance.json`` with ``samples.png``). Results go to
    ``out_dir/results/<name>/<dataset>/``, keyed by the run's identity (``protocol``: data, samples, where the
    weights came from)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name must be a folder name, not {name!r}")
    hp = clip_settings(model)
    for key, value in hp.items():
        if getattr(dataset, key, value) != value:
            raise ValueError(f"the dataset's {key} {getattr(dataset, key)} is not the model's {value}")
    out_dir = Path(out_dir)
    identity = run_identity(model, **protocol)
    store = ResultStore(out_dir / "results" / name / protocol["dataset"], identity, suffix=".json")
    store.check()
    groups = video_groups(dataset)
    done = {video: read_result(store.path(video), g) for video, g in groups.items()}
    todo = [g for video, g in groups.items() if done[video] is None]
    module = SegmentationBenchmark(model, store, chunk)
    data = VideoData(dataset, todo, num_workers)
    if todo:
        is_zero = run_test_loop(module, data, use_distributed_sampler=False, **trainer_kwargs)
        if not is_zero:
            return None
    elif int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) != 0:  # all done: rank 0 scores
        return None
    samples = read_results(store, groups, {v: found for v, found in done.items() if found is not None})
    scores = score(samples)
    report = {
        "dataset": protocol["dataset"], "name": name, **scores,
        "meta": {"num_samples": len(samples), "num_videos": len(groups), "resumed_videos": len(groups) - len(todo),
                 "run_identity": read_identity(store.folder / "run.json"),
                 "samples_per_second": module.frames / module.seconds if module.seconds else None},
    }
    folder = out_dir / "reports" / name / protocol["dataset"]
    atomic_write_bytes(folder / "performance.json", json.dumps(report, indent=1).encode())
    draw_samples(dataset, samples, folder / "samples.png")
    report["report_dir"] = str(folder)
    return report


def segmentation_parser(dataset: str, description: str) -> Any:
    """The options both referring-segmentation benchmarks share; ``dataset`` is ``a2d`` or ``jhmdb-sentences``."""
    from zoo.commands import ArgumentParser, devices, positive_int

    p = ArgumentParser(prog=f"zoo benchmark {dataset}", description=description)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name (arch or arch.tag) to run")
    src.add_argument("--checkpoint", help="a checkpoint file to run (zoo.load(checkpoint_path=...))")
    p.add_argument("--root", required=True, help="the dataset root")
    p.add_argument("--out", default="runs/benchmark/referring", help="where results/ and reports/ go")
    p.add_argument("--name", help="model name for results and reports (default: the --model name, else the "
                   "checkpoint file's stem)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="clips per forward pass")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--devices", type=devices, default="auto", help="auto, a number of devices, or a list 0,1")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights a --model has no checkpoint for")
    return p


def run_segmentation(p: Any, a: Any, make_dataset: Any, protocol: dict[str, Any]) -> int:
    """Build the model ``--model`` / ``--checkpoint`` names, benchmark it on ``make_dataset(model.hparams)`` (the
    dataset cut for that model's clips) and print the table."""
    import sys

    from zoo.benchmark.commands.otb import build_model

    model, source = build_model(p, a)
    if not callable(getattr(model, "segment", None)):
        p.error(f"{a.model or a.checkpoint} is a {type(model).__name__}, not a referring-segmentation model "
                "(actor_action_*, or a lingual_* network trained on A2D Sentences)")
    name = a.name or a.model or Path(a.checkpoint).stem
    dataset = make_dataset(clip_settings(model))
    if getattr(model, "text", None) is None:  # an untrained --model: random embeddings for the benchmark's words
        if not callable(getattr(model, "build_vocabulary", None)):
            p.error(f"{a.model or a.checkpoint} has no vocabulary: train it first")
        model.build_vocabulary(dataset.sentences())
        source = {**source, "vocabulary": "the benchmark's sentences"}
    report = benchmark_referring(model, dataset, a.out, name, {**protocol, "source": source}, chunk=a.batch_size,
                                 num_workers=a.workers, devices=a.devices)
    if report is None:  # not rank 0
        return 0
    meta = report["meta"]
    if meta["resumed_videos"]:
        print(f"resumed: {meta['resumed_videos']} of {meta['num_videos']} videos were already done", file=sys.stderr)
    print(format_table(name, report, meta["num_samples"]))
    print(f"report: {Path(report['report_dir']) / 'performance.json'} (samples.png beside it)")
    return 0
