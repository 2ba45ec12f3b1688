"""Action recognition on UCF101 and HMDB51 over the official splits (``zoo benchmark ucf101|hmdb51``).

Each test split is scored as the papers report it: clip accuracy (each of a video's views alone, averaged over
views and videos: the accuracy of one clip) and video accuracy (the softmax of the video's K clips x crops views
averaged, as C3D, TSN and O3N's Sec. 5.2), top-1 and top-5, per-class (video top-1) accuracy and the confusion
matrix; then the mean and standard deviation over the splits (population, ddof 0). The views are
``datamodules.eval_views``; the clips are scored in Lightning's test loop (DDP splits the videos across ranks).

A run folder (``--out``) holds ``run.json`` (what produced it: the checkpoints' sha256, the dataset and the options;
``zoo.benchmark.runner.ResultStore``), per split ``split<k>.result.json`` and ``split<k>.logits.npz`` (every view's
logits), ``report.json`` and ``confusion_split<k>.png``. Each file is written atomically; a rerun skips the splits
already written, so an interrupted benchmark resumes and a finished one gives the identical report. A checkpoint
whose datamodule recorded the split it was trained on is scored on that split only, unless the run is allowed to
mix splits, which the report then says.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from datamodules.action import present_items, read_action_split
from datamodules.eval_views import VideoViews, crops_text, decode_size
from zoo.benchmark.runner import ResultStore, identity_key
from zoo.errors import CheckpointError, DatasetError
from zoo.hub import atomic_write_bytes

log = logging.getLogger(__name__)

SPLITS = (1, 2, 3)
METRICS = ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_acc")
RESULT_SUFFIX = ".result.json"
REPORT = "report.json"
TIMING = ("seconds", "clips_per_second", "confusion")  # in the split files, not in the report: a resumed run's
# report is the same as an uninterrupted one's (the machine's speed is printed; the matrix is in the split files)


class ClipScorer(pl.LightningModule):
    """The test loop's module: every view of every video through ``model.clip_logits``; the logits are gathered
    from all ranks at the end (``results``: video index -> (views, classes) logits)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.results: dict[int, np.ndarray] = {}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        clips = batch["clips"]
        b, v = clips.shape[:2]
        logits = self.model.clip_logits(clips.flatten(0, 1)).float().view(b, v, -1)
        self.outputs.append((batch["index"].cpu(), logits.cpu()))

    def on_test_epoch_end(self) -> None:
        local = [(int(i), row.numpy()) for idx, logits in self.outputs for i, row in zip(idx, logits)]
        if self.trainer.world_size > 1:  # the sampler pads ranks with repeated videos: keep one of each
            parts: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(parts, local)
            local = [pair for part in parts for pair in part]
        self.results = dict(local)
        self.outputs = []


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The model in a checkpoint file, its sha256, and the dataset and split its datamodule recorded (if any)."""
    import zoo
    from zoo.hub import load_checkpoint_file, sha256sum
    from zoo.video_classifier import VideoClassifier

    path = Path(path)
    ckpt = load_checkpoint_file(path)
    model = zoo.load(checkpoint_path=path)
    if not isinstance(model, VideoClassifier):
        raise CheckpointError(f"{path}: holds a {type(model).__name__}, not a clip classifier (the benchmark scores "
                              "ClipClassifier, O3NClassifier and other zoo.video_classifier.VideoClassifier models)")
    data = ckpt.get("datamodule_hyper_parameters") if isinstance(ckpt, dict) else None
    data = data if isinstance(data, dict) else {}
    split = data.get("split")
    return {"path": str(path), "model": model, "sha256": sha256sum(path),
            "trained_split": int(split) if isinstance(split, int) else None, "trained_dataset": data.get("dataset")}


def check_classes(info: dict[str, Any], classes: list[str], dataset: str, root: str) -> None:
    """The model must have the dataset's classes (their number, and their names when it records them)."""
    model = info["model"]
    n = int(model.hparams.num_classes)
    if n != len(classes):
        raise CheckpointError(f"{info['path']}: the model has {n} classes, {dataset} at {root} has {len(classes)}; "
                              f"benchmark a checkpoint trained on {dataset}")
    names = model.classes
    if names is not None and [c.lower() for c in names] != [c.lower() for c in classes]:
        i = next(i for i, (a, b) in enumerate(zip(names, classes)) if a.lower() != b.lower())
        raise CheckpointError(f"{info['path']}: class {i} is {names[i]!r} in the checkpoint, {classes[i]!r} in "
                              f"{dataset} at {root}; the labels would not match")


def split_checkpoints(checkpoints: list[str], splits: list[int], mixed_splits: bool) -> dict[int, dict[str, Any]]:
    """Which checkpoint scores which split: one for all, or one per split in order; a checkpoint trained on split
    k scored on another split is an error unless ``mixed_splits``."""
    if len(checkpoints) not in (1, len(splits)):
        raise DatasetError(f"--checkpoint: give one checkpoint, or one per split ({len(splits)}), "
                           f"not {len(checkpoints)}")
    infos: dict[str, dict[str, Any]] = {}
    chosen = {}
    for k, split in enumerate(splits):
        path = checkpoints[0] if len(checkpoints) == 1 else checkpoints[k]
        info = infos.setdefault(path, checkpoint_info(path))
        trained = info["trained_split"]
        if trained is not None and trained != split and not mixed_splits:
            raise CheckpointError(f"{path}: trained on split {trained}, so it is scored on split {trained} only; "
                                  f"give one checkpoint per split, --splits {trained}, or --mixed-splits to score it "
                                  "on other splits too (the report then says the splits are mixed)")
        chosen[split] = info
    return chosen


def accuracy_at(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` highest scores."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, probs.shape[-1])
    top = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    return float(np.mean(np.any(top == labels[..., None], axis=-1)))


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def split_metrics(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Clip and video accuracy (top-1, top-5), per-class video accuracy and the confusion matrix (rows: true
    class, columns: predicted) of ``logits`` (videos, views, classes)."""
    n, v, _ = logits.shape
    probs = softmax(logits.astype(np.float64))
    video = probs.mean(1)
    clip_labels = np.repeat(labels, v)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels, video.argmax(-1)), 1)
    totals = confusion.sum(1)
    per_class = {c: (float(confusion[i, i] / totals[i]) if totals[i] else None) for i, c in enumerate(classes)}
    scored = [a for a in per_class.values() if a is not None]
    return {
        "num_videos": int(n), "views_per_video": int(v),
        "clip_top1": accuracy_at(probs.reshape(n * v, -1), clip_labels, 1),
        "clip_top5": accuracy_at(probs.reshape(n * v, -1), clip_labels, 5),
        "video_top1": accuracy_at(video, labels, 1),
        "video_top5": accuracy_at(video, labels, 5),
        "mean_class_acc": float(np.mean(scored)) if scored else float("nan"),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def confusion_png(confusion: list[list[int]], classes: list[str], title: str) -> bytes:
    """A confusion-matrix plot (rows normalised) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(confusion, dtype=np.float64)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    side = min(4 + 0.12 * len(classes), 16)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    size = max(3, min(8, 400 // max(len(classes), 1)))
    ax.set_xticks(ticks, classes, rotation=90, fontsize=size)
    ax.set_yticks(ticks, classes, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def score_split(info: dict[str, Any], dataset: str, root: str, split: int, options: dict[str, Any],
                devices: Any = "auto") -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Score one test split in the test loop; ``(result, arrays)`` on rank 0, None on the other ranks."""
    from torch.utils.data import DataLoader

    from zoo.trainer import build_trainer

    classes, items = read_action_split(dataset, root, split, False, options["split_dir"])
    check_classes(info, classes, dataset, root)
    kept, missing = present_items(root, items, options["frame_store"])
    if not kept:
        raise DatasetError(f"{options['frame_store'] or root}: none of the {len(items)} test videos of split "
                           f"{split} is on disk")
    model = info["model"]
    views = VideoViews(root, kept, model.eval_clip_spec(), options["clips"], options["size"], options["crops"],
                       options["resize_ratio"], options["backend"], options["frame_store"])
    workers = options["num_workers"]
    loader = DataLoader(views, batch_size=options["batch_size"], shuffle=False, num_workers=workers,
                        persistent_workers=False, pin_memory=torch.cuda.is_available())
    scorer = ClipScorer(model)
    trainer = build_trainer(loggers="", logger=False, enable_checkpointing=False, enable_model_summary=False,
                            enable_progress_bar=False, devices=devices, default_root_dir=options["out"])
    start = time.perf_counter()
    trainer.test(scorer, dataloaders=loader, verbose=False)
    seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return None
    order = sorted(scorer.results)
    logits = np.stack([scorer.results[i] for i in order]).astype(np.float32)
    labels = np.array([kept[i][1] for i in order], dtype=np.int64)
    result = {
        "split": split,
        "checkpoint": {"path": info["path"], "sha256": info["sha256"], "trained_split": info["trained_split"]},
        "clip_spec": model.eval_clip_spec().as_dict(),
        "missing": missing,
        **split_metrics(logits, labels, classes),
        "seconds": round(seconds, 3),
        "clips_per_second": round(logits.shape[0] * logits.shape[1] / max(seconds, 1e-9), 2),
    }
    arrays = {"logits": logits, "labels": labels, "videos": np.array([kept[i][0] for i in order])}
    return result, arrays


def summary(results: dict[int, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation (ddof 0) of each metric over the splits."""
    out: dict[str, dict[str, float]] = {"mean": {}, "std": {}}
    for key in METRICS:
        values = np.array([r[key] for r in results.values()], dtype=np.float64)
        out["mean"][key] = float(values.mean())
        out["std"][key] = float(values.std())
    return out


def read_result(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not a benchmark result (corrupt JSON: {e}); delete it to score the split "
                           "again") from None


def benchmark_classification(dataset: str, checkpoints: list[str], root: str, splits: list[int], out: str,
                             clips: int = 10, crops: str = "centre", size: tuple[int, int] | None = None,
                             resize_ratio: float | None = None, batch_size: int = 4, num_workers: int = 2,
                             backend: str = "decord", frame_store: str | None = None, split_dir: str | None = None,
                             mixed_splits: bool = False, devices: Any = "auto") -> dict[str, Any] | None:
    """Score ``checkpoints`` on the test lists of ``splits``; returns the report (None on ranks other than 0)."""
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise DatasetError(f"split {bad[0]} is not an official split of {dataset}; choose from 1, 2, 3")
    splits = list(dict.fromkeys(splits))
    if not Path(root).is_dir():
        raise DatasetError(f"{root}: {dataset} root folder not found")
    chosen = split_checkpoints(checkpoints, splits, mixed_splits)
    first = next(iter(chosen.values()))["model"]
    size = tuple(size) if size else first.frame_size
    options = {"clips": clips, "crops": crops, "size": list(size),
               "decode_size": list(decode_size(size, crops, resize_ratio)), "resize_ratio": resize_ratio,
               "backend": backend if frame_store is None else "frame_store", "frame_store": frame_store,
               "split_dir": split_dir}
    identity = {"benchmark": dataset, "root": str(Path(root).resolve()), "options": options,
                "checkpoint_sha256": sorted({info["sha256"] for info in chosen.values()})}
    store = ResultStore(out, identity, suffix=RESULT_SUFFIX)
    run = {**options, "batch_size": batch_size, "num_workers": num_workers, "out": out}
    if pl.utilities.rank_zero_only.rank == 0:
        store.open()
    results: dict[int, dict[str, Any]] = {}
    resumed = []
    for split in splits:
        path = store.path(f"split{split}")
        if path.is_file():
            results[split] = read_result(path)
            resumed.append(split)
            continue
        scored = score_split(chosen[split], dataset, root, split, run, devices)
        if scored is None:
            continue
        result, arrays = scored
        classes = list(result["per_class"])
        title = f"{dataset} split {split}: video top-1 {100 * result['video_top1']:.1f}%"
        png = confusion_png(result["confusion"], classes, title)
        atomic_write_bytes(Path(out) / f"confusion_split{split}.png", png)
        store.write(f"split{split}", npz_bytes(**arrays), suffix=".logits.npz")
        store.write(f"split{split}", json.dumps(result, indent=1).encode())  # last: marks the split done
        results[split] = result
    if pl.utilities.rank_zero_only.rank != 0:
        return None
    trained = {s: r["checkpoint"]["trained_split"] for s, r in results.items()}
    mixed = sorted(s for s, t in trained.items() if t is not None and t != s)
    report = {
        "benchmark": dataset, "run": identity_key(identity), "options": options,
        "splits": {str(s): {k: v for k, v in results[s].items() if k not in TIMING} for s in splits},
        **summary({s: results[s] for s in splits}),
        "mixed_splits": bool(mixed),
        "note": (f"splits {', '.join(map(str, mixed))} were scored with a checkpoint trained on another split "
                 "(its training videos may be in their test lists)") if mixed else None,
    }
    atomic_write_bytes(Path(out) / REPORT, json.dumps(report, indent=1).encode())
    report["resumed_splits"] = resumed
    report["clips_per_second"] = {s: results[s]["clips_per_second"] for s in splits}
    return report


def format_table(report: dict[str, Any]) -> str:
    """The printed table: one row per split, then the mean and the standard deviation (percent)."""
    header = f"{'split':>6} {'videos':>7} {'clip@1':>7} {'clip@5':>7} {'video@1':>8} {'video@5':>8} {'class':>7}"
    lines = [f"{report['benchmark']}: {report['options']['clips']} clips x {crops_text(report['options']['crops'])} "
             "per video", header]

    def row(name: str, n: Any, m: dict[str, Any]) -> str:
        cells = [f"{100 * m[k]:7.2f}" if not math.isnan(m[k]) else f"{'-':>7}" for k in METRICS]
        return f"{name:>6} {n!s:>7} {cells[0]} {cells[1]} {cells[2]:>8} {cells[3]:>8} {cells[4]}"

    for split, result in report["splits"].items():
        lines.append(row(split, result["num_videos"], result))
    if len(report["splits"]) > 1:
        lines.append(row("mean", "", report["mean"]))
        lines.append(row("std", "", report["std"]))
    if report.get("note"):
        lines.append(f"note: {report['note']}")
    speed = report.get("clips_per_second") or {}
    if speed:
        lines.append("clips/s (decoding included): " + ", ".join(f"split {s} {v:.1f}" for s, v in speed.items()))
    return "\n".join(lines)


def split_number(text: str) -> int:
    """An argparse type: an official split, 1, 2 or 3."""
    import argparse

    if text.strip() not in ("1", "2", "3"):
        raise argparse.ArgumentTypeError(f"must be 1, 2 or 3 (the official splits), not {text!r}")
    return int(text)


def run_command(dataset: str, argv: Sequence[str]) -> int:
    """``zoo benchmark ucf101|hmdb51``: score the checkpoints, print the table, write the report and plots."""
    import sys

    from zoo.cli import frame_size
    from zoo.commands import ArgumentParser, devices, positive_int

    p = ArgumentParser(prog=f"zoo benchmark {dataset}", description=f"Score a clip classifier on {dataset}'s "
                       "official test splits: clip and video accuracy (top-1, top-5), per-class accuracy, mean and "
                       "standard deviation over the splits.")
    p.add_argument("--checkpoint", nargs="+", metavar="CKPT",
                   help="a classifier checkpoint (zoo fit, model.save), or one per split in --splits order")
    p.add_argument("--pretrained", help="the self-supervised protocol: fit --config on each split from this "
                   "network (a zoo fit checkpoint or a zoo name), then score the fitted checkpoints")
    p.add_argument("--protocol", choices=("finetune", "linear"), default="finetune",
                   help="with --pretrained: fine-tune everything, or a linear classifier on frozen features")
    p.add_argument("--config", help="with --pretrained: the fine-tuning config (zoo fit YAML; root, split and "
                   "pretrained are set per split)")
    p.add_argument("--seed", type=int, default=0, help="with --pretrained: the seed of every split's fit")
    p.add_argument("--root", required=True, help="the dataset root (videos and split lists)")
    p.add_argument("--splits", nargs="+", type=split_number, default=[1, 2, 3], metavar="K")
    p.add_argument("--out", default=f"runs/benchmark/{dataset}", help="the run folder (a rerun resumes in it)")
    p.add_argument("--clips", type=positive_int, default=10, help="clips per video for video accuracy")
    p.add_argument("--crops", default="centre", choices=("centre", "3", "10"), help="crops per clip")
    p.add_argument("--size", default=None, help="HEIGHTxWIDTH of the network's input (default: the size the "
                   "checkpoint was trained at)")
    p.add_argument("--resize-ratio", type=float, default=None, help="frames are decoded at this ratio to --size "
                   "and cropped (default: 1 for centre, 256/224 for 3 and 10 crops)")
    p.add_argument("--mixed-splits", action="store_true", help="score a checkpoint trained on split k on other "
                   "splits too (the report says the splits are mixed)")
    p.add_argument("--frame-store", default=None, help="a frame store of zoo prepare (frames read without decoding)")
    p.add_argument("--split-dir", default=None, help="the split lists (default: the official folder under --root)")
    p.add_argument("--backend", default="decord", choices=("decord", "pyav"))
    p.add_argument("--batch-size", type=positive_int, default=4, help="videos per batch")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--devices", type=devices, default="auto", help="auto, a number of devices, or a list 0,1")
    a = p.parse_args(argv)
    if a.resize_ratio is not None and a.resize_ratio < 1:
        p.error(f"--resize-ratio must be at least 1 (crops lie inside the frame), not {a.resize_ratio}")
    if bool(a.checkpoint) == bool(a.pretrained):
        p.error("give --checkpoint CKPT (score a classifier) or --pretrained SSL.ckpt --config FINETUNE.yaml "
                "(fit each split by the protocol, then score)")
    checkpoints = a.checkpoint
    if a.pretrained:
        from zoo.benchmark.ssl_protocol import run_protocol

        if not a.config:
            p.error("--pretrained needs --config FINETUNE.yaml (the classifier and datamodule to fit)")
        checkpoints = run_protocol(dataset, a.pretrained, a.protocol, a.config, a.root, a.splits, a.out, a.seed)
    report = benchmark_classification(
        dataset, checkpoints, a.root, a.splits, a.out, clips=a.clips, crops=a.crops,
        size=frame_size(p, a.size) if a.size else None, resize_ratio=a.resize_ratio, batch_size=a.batch_size,
        num_workers=max(a.workers, 0), backend=a.backend, frame_store=a.frame_store, split_dir=a.split_dir,
        mixed_splits=a.mixed_splits, devices=a.devices,
    )
    if report is None:  # not rank 0
        return 0
    if report["resumed_splits"]:
        print(f"resumed: splits {', '.join(map(str, report['resumed_splits']))} were already scored in {a.out}",
              file=sys.stderr)
    print(format_table(report))
    print(f"report: {Path(a.out) / REPORT} (per-split results, logits and confusion plots beside it)")
    return 0
