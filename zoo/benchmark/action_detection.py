"""Benchmarking spatio-temporal action detection on UCF101-24, J-HMDB-21 and UCF-Sports: detection files,
scoring (frame-mAP, video-mAP at every delta), reports, plots, and running a per-frame detector in Lightning's
test loop (``zoo.benchmark.runner``).

Detection files: ``zoo.benchmark.detection_files``; running a detector: ``zoo.benchmark.detector_run``.

**Scores.** frame-mAP at IoU ``iou`` (default 0.5) from per-frame detections; for a tubes file, from the tubes'
boxes, each with its tube's score (the frame-level view of the tubes; reported as ``frame_map_from: tubes``).
video-mAP from tubes: those of a ``.json`` file, or per-frame detections linked into tubes
(``zoo.tubes.link_videos``: ``online``, ROAD's linking with temporal trimming, for untrimmed UCF101-24;
``viterbi``, whole-video linking, for trimmed J-HMDB and UCF-Sports). Both through
``zoo.metrics.action_detection`` under one ``convention``. J-HMDB is reported as the mean of its 3 splits
(``split="all"``); each split's scores are kept in the report.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.action_tubes import Tube, TubeAnnotations
from zoo.benchmark.detection_files import read_detections, read_utf8, write_tubes_json
from zoo.benchmark.detector_run import benchmark_detector, detector_settings
from zoo.errors import DatasetError, parse_error
from zoo.hub import atomic_write_bytes
from zoo.metrics.action_detection import COCO_DELTAS, CONVENTIONS, DELTAS, frame_ap, mean_ap, video_aps

DELTA_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95: the video-mAP-against-delta plot


def tubes_as_frame_detections(tubes: Mapping[str, Sequence[Tube]]) -> dict[str, np.ndarray]:
    """Every box of every tube as a per-frame detection with its tube's score (frame-mAP of a tubes file)."""
    out = {}
    for video, video_tubes in tubes.items():
        parts = [np.column_stack([t.boxes[:, 0], np.full(len(t.boxes), t.label, dtype=np.float64),
                                  np.full(len(t.boxes), t.score), t.boxes[:, 1:5]]) for t in video_tubes]
        out[video] = np.concatenate(parts) if parts else np.zeros((0, 7))
    return out


def _class_dict(classes: Sequence[str], ap: np.ndarray) -> dict[str, float | None]:
    return {name: (None if not np.isfinite(v) else float(v)) for name, v in zip(classes, np.asarray(ap, float))}


def _mean(ap: np.ndarray) -> float | None:
    """mAP (``mean_ap``: over the classes that have an AP) as JSON: None when no class has one."""
    value = mean_ap(ap)
    return None if math.isnan(value) else value


@dataclass
class Scored:
    """One split's scores and what they took."""

    report: dict[str, Any]
    tubes: dict[str, list[Tube]]


def score_split(
    annotations: TubeAnnotations,
    videos: Sequence[str],
    kind: str,
    data: Mapping[str, Any],
    convention: str = "act",
    linking: str = "online",
    iou: float = 0.5,
    workers: int = 1,
) -> Scored:
    """frame-mAP and video-mAP (every delta of ``DELTA_GRID``, the table's 0.2 / 0.5 / 0.75 and 0.5:0.95) of
    detections (``kind`` ``frames``: per-frame arrays by video, linked into tubes by ``linking``; ``tubes``: tubes
    by video) on ``videos``; detections of other videos are left out, videos without any score as misses."""
    wanted = set(videos)
    data = {v: d for v, d in data.items() if v in wanted}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if kind == "frames":
        from zoo.tubes import link_videos

        frames = {v: data.get(v, np.zeros((0, 7))) for v in videos}
        tubes = link_videos(frames, annotations, method=linking, workers=workers)
        seconds["linking"] = time.perf_counter() - t0
    else:
        tubes = {v: list(data.get(v, [])) for v in videos}
        frames = tubes_as_frame_detections(tubes)
    t0 = time.perf_counter()
    fap = np.asarray(frame_ap(frames, annotations, videos=list(videos), iou=iou, convention=convention))
    seconds["frame_map"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    deltas = sorted(set(DELTA_GRID) | set(DELTAS) | set(COCO_DELTAS))
    curve = dict(zip(deltas, video_aps(tubes, annotations, list(videos), deltas, convention)))
    seconds["video_map"] = time.perf_counter() - t0
    classes = annotations.classes
    video_map = {f"{d:g}": _mean(curve[d]) for d in DELTAS}
    video_map["0.5:0.95"] = _average([_mean(curve[d]) for d in COCO_DELTAS])
    report = {
        "frame_map": _mean(fap), "frame_ap": _class_dict(classes, fap),
        "frame_map_from": "detections" if kind == "frames" else "tubes",
        "video_map": video_map,
        "video_ap": {f"{d:g}": _class_dict(classes, curve[d]) for d in DELTAS},
        "video_map_curve": {f"{d:g}": _mean(curve[d]) for d in DELTA_GRID},
        "num_videos": len(videos),
        "num_videos_with_detections": sum(1 for v in videos if len(data.get(v, ())) > 0),
        "num_frame_detections": int(sum(len(f) for f in frames.values())),
        "num_tubes": int(sum(len(t) for t in tubes.values())),
        "seconds": seconds,
    }
    return Scored(report, tubes)


SCORE_KEYS = ("frame_map", "video_map", "frame_ap", "video_ap", "video_map_curve")


def _average(values: list[Any]) -> Any:
    """The mean of numbers, or of dicts of them key by key (None where any split has none)."""
    if isinstance(values[0], dict):
        return {k: _average([v[k] for v in values]) for k in values[0]}
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None
    return float(np.mean(values))


def mean_over_splits(split_reports: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The reported numbers of several splits (J-HMDB's 3): each score averaged over the splits."""
    reports = list(split_reports.values())
    return {k: _average([r[k] for r in reports]) for k in SCORE_KEYS}


# ---------------------------------------------------------------------------------------------------------------
# reports, tables and plots


def _pct(value: float | None) -> str:
    return f"{100 * value:6.2f}" if value is not None and math.isfinite(value) else f"{'-':>6s}"


def format_table(report: dict[str, Any]) -> str:
    """The papers' table (frame-mAP, video-mAP @0.2/0.5/0.75/0.5:0.95, in percent) and per-class AP."""
    name = report["name"]
    width = max([len(name), 16, *(len(c) for c in report["frame_ap"])])
    vm = report["video_map"]
    head = f"{'detector':<{width}} {'f-mAP':>6} {'v@0.2':>6} {'v@0.5':>6} {'v@0.75':>6} {'v@.5:.95':>8}"
    rows = [head, "-" * len(head), f"{name:<{width}} {_pct(report['frame_map'])} {_pct(vm['0.2'])} "
            f"{_pct(vm['0.5'])} {_pct(vm['0.75'])} {_pct(vm['0.5:0.95']):>8}", "",
            f"{'class':<{width}} {'frame':>6} {'v@0.2':>6} {'v@0.5':>6} {'v@0.75':>6}"]
    for cls, ap in report["frame_ap"].items():
        rows.append(f"{cls:<{width}} {_pct(ap)} " + " ".join(_pct(report["video_ap"][d][cls]) for d in
                                                               ("0.2", "0.5", "0.75")))
    meta = report["meta"]
    split = f"mean of splits {', '.join(report['splits'])}" if len(report["splits"]) > 1 else f"split {report['split']}"
    rows.append(f"({report['dataset']} {split}, {meta['num_videos']} test videos, convention {report['convention']}, "
                f"frame IoU {report['iou']:g}, frame-mAP from {meta['frame_map_from']}"
                + (f", linking {report['linking']})" if meta["frame_map_from"] == "detections" else ")"))
    return "\n".join(rows)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_class_ap(report: dict[str, Any], path: Path) -> Path:
    """Per-class AP bars: frame AP and video AP at 0.5, side by side."""
    plt = _plt()
    classes = list(report["frame_ap"])
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(classes) + 2), 4.2))
    for offset, values, label in ((-0.2, report["frame_ap"], f"frame AP@{report['iou']:g}"),
                                  (0.2, report["video_ap"]["0.5"], "video AP@0.5")):
        heights = [100 * (values[c] if values[c] is not None else 0.0) for c in classes]
        ax.bar(x + offset, heights, width=0.4, label=label)
    ax.set_xticks(x, classes, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="AP (%)", ylim=(0, 101), title=f"{report['name']}: per-class AP, {report['dataset']} "
           f"(f-mAP {_pct(report['frame_map']).strip()}, v-mAP@0.5 {_pct(report['video_map']['0.5']).strip()})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return path


def plot_video_map_delta(reports: Sequence[dict[str, Any]], path: Path) -> Path:
    """video-mAP against the spatio-temporal overlap threshold delta, one curve per detector (as in ROAD's and
    ACT's figures)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    for r in sorted(reports, key=lambda r: -(r["video_map"]["0.5"] or 0.0)):
        curve = r["video_map_curve"]
        deltas = [float(d) for d in curve]
        values = [100 * (v if v is not None else float("nan")) for v in curve.values()]
        ax.plot(deltas, values, marker="o", markersize=3, linewidth=2,
                label=f"{r['name']} [{_pct(r['video_map']['0.5']).strip()} @0.5]")
    datasets = sorted({r["dataset"] for r in reports})
    ax.set(xlabel="spatio-temporal overlap threshold (delta)", ylabel="video-mAP (%)", xlim=(0, 1), ylim=(0, 101),
           title=f"video-mAP against delta, {', '.join(datasets)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    _save(fig, path)
    plt.close(fig)
    return path


def read_report(path: str | os.PathLike) -> dict[str, Any]:
    """A report written by ``write_report`` (for ``--compare``); another file is a DatasetError naming it."""
    path = Path(path)
    try:
        report = json.loads(read_utf8(path, "report"))
    except json.JSONDecodeError as e:
        raise parse_error(path, e.lineno, f"not a detection report (corrupt JSON: {e.msg})") from None
    if not isinstance(report, dict) or not {"name", "dataset", "video_map", "video_map_curve"} <= set(report):
        raise parse_error(path, 1, "not a detection report (performance.json of zoo benchmark ucf101-24|jhmdb|"
                          "ucfsports)")
    return report


def write_report(report: dict[str, Any], folder: str | os.PathLike,
                 compare: Sequence[dict[str, Any]] = ()) -> Path:
    """``performance.json`` (atomically), ``class_ap.png`` and ``video_map_delta.png`` (with the ``compare``
    reports' curves) in ``folder``."""
    folder = Path(folder)
    path = folder / "performance.json"
    atomic_write_bytes(path, json.dumps(report, indent=1, allow_nan=False).encode())
    plot_class_ap(report, folder / "class_ap.png")
    plot_video_map_delta([report, *compare], folder / "video_map_delta.png")
    return path


# ---------------------------------------------------------------------------------------------------------------
# datasets and the command


@dataclass(frozen=True)
class DatasetSpec:
    """A benchmark's defaults: its annotation file under the root, the splits it reports, its linking."""

    name: str
    annotations: str
    split: str
    linking: str
    frames_folder: str
    flow_folder: str
    title: str


DATASETS = {
    "ucf101-24": DatasetSpec("ucf101-24", "splitfiles/pyannot.pkl", "1", "online", "rgb-images", "fastOF-images",
                             "UCF101-24 (corrected annotations, split 1)"),
    "jhmdb": DatasetSpec("jhmdb", "JHMDB-GT.pkl", "all", "viterbi", "Frames", "FlowBrox04",
                         "J-HMDB-21 (ACT's JHMDB-GT.pkl, mean of 3 splits)"),
    "ucfsports": DatasetSpec("ucfsports", "UCFSports-GT.pkl", "1", "viterbi", "Frames", "FlowBrox04",
                             "UCF-Sports (ACT's UCFSports-GT.pkl, 1 split)"),
}


def load_annotations(spec: DatasetSpec, root: str | os.PathLike | None, annotations: str | os.PathLike | None
                     ) -> TubeAnnotations:
    """The annotation ``--annotations`` names (default ``<root>/<spec.annotations>``): an ACT ``*-GT.pkl`` (any
    dataset), else a ROAD ``pyannot.pkl`` with its ``trainlist01.txt`` / ``testlist01.txt`` beside it or in
    ``<root>/splitfiles``."""
    from datamodules.action_tubes import read_act_gt, read_pyannot

    if annotations is None and root is None:
        raise DatasetError(f"zoo benchmark {spec.name}: give --annotations (a pyannot.pkl or *-GT.pkl) or --root")
    path = Path(annotations) if annotations is not None else Path(root) / spec.annotations
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    if path.name.lower().endswith("-gt.pkl"):
        return read_act_gt(path, dataset=spec.name)
    lists = [path.parent, *([Path(root) / "splitfiles"] if root is not None else [])]
    test = next((d / "testlist01.txt" for d in lists if (d / "testlist01.txt").is_file()), None)
    train = next((d / "trainlist01.txt" for d in lists if (d / "trainlist01.txt").is_file()), None)
    if test is None and train is None:
        raise DatasetError(f"{path}: no testlist01.txt or trainlist01.txt beside it; the test split is unknown")
    return read_pyannot(path, trainlist=train, testlist=test, dataset=spec.name)


def split_numbers(annotations: TubeAnnotations, split: str) -> list[int]:
    """The splits ``--split`` names (``all``: every split of the annotation)."""
    have = sorted(annotations.splits)
    if not have:
        raise DatasetError(f"{annotations.source}: no split lists, so no test videos")
    if split == "all":
        return have
    if not split.isdigit() or int(split) not in have:
        raise DatasetError(f"{annotations.source}: no split {split!r} (splits: {', '.join(map(str, have))}, all)")
    return [int(split)]


def report_key(spec: DatasetSpec, split: str, convention: str, linking: str, iou: float, kind: str) -> str:
    """The report folder's name: ``split1``, ``splitall``, plus what differs from the defaults, so reports of
    other settings never overwrite each other."""
    default_convention = next(iter(CONVENTIONS))
    key = f"split{split}"
    key += "" if convention == default_convention else f"-{convention}"
    key += "" if linking == spec.linking or kind == "tubes" else f"-{linking}"
    return key + ("" if iou == 0.5 else f"-iou{iou:g}")


def build_report(spec: DatasetSpec, annotations: TubeAnnotations, name: str, split: str,
                 scored: Mapping[int, Scored], convention: str, linking: str, iou: float,
                 meta: dict[str, Any]) -> dict[str, Any]:
    """One report: the scores (the mean over splits when several), each split's, and what produced them."""
    from zoo import __version__
    from zoo.hub import sha256sum

    per_split = {str(k): s.report for k, s in scored.items()}
    first = next(iter(per_split.values()))
    scores = mean_over_splits(per_split) if len(per_split) > 1 else {k: first[k] for k in SCORE_KEYS}
    seconds: dict[str, float] = {}
    for r in per_split.values():
        for k, v in r["seconds"].items():
            seconds[k] = seconds.get(k, 0.0) + v
    return {
        "dataset": spec.name, "name": name, "split": split, "splits": list(per_split), "convention": convention,
        "linking": linking, "iou": iou, **scores, "per_split": per_split,
        "meta": {"num_videos": sum(r["num_videos"] for r in per_split.values()),
                 "frame_map_from": first["frame_map_from"], "annotations": str(annotations.source),
                 "annotations_sha256": sha256sum(annotations.source) if annotations.source else None,
                 "classes": list(annotations.classes), "zoo_version": __version__, "seconds": seconds, **meta},
    }


def _default_name(a: Any) -> str:
    if a.name:
        return a.name
    if a.detections:
        return Path(a.detections[0]).stem
    return a.model or Path(a.checkpoint[0]).stem


def parser(spec: DatasetSpec) -> Any:
    """The options of ``zoo benchmark <spec.name>``."""
    from zoo.commands import ArgumentParser, devices, positive_int
    from zoo.tubes.linking import METHODS

    p = ArgumentParser(prog=f"zoo benchmark {spec.name}", description=f"Score spatio-temporal action detections on "
                       f"{spec.title}: frame-mAP, video-mAP at every delta, per-class AP; a JSON report and plots. "
                       "Detection files: see zoo.benchmark.action_detection (and the README).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--detections", nargs="+", metavar="FILE", help="score existing detections: a .csv of per-frame "
                     "detections (video,frame,label,score,x1,y1,x2,y2) or a .json of tubes; with --split all, one "
                     "file for every split or one per split")
    src.add_argument("--checkpoint", nargs="+", metavar="CKPT", help="run a detector checkpoint (with --split all: "
                     "one, or one per split)")
    src.add_argument("--model", help="run a registered detector (arch or arch.tag)")
    p.add_argument("--root", help=f"the dataset root ({spec.frames_folder}/ and {spec.annotations}); needed to run "
                   "a detector")
    p.add_argument("--annotations", help=f"a pyannot.pkl or *-GT.pkl (None: <root>/{spec.annotations})")
    p.add_argument("--split", default=spec.split, help="split number, or all (the mean over the annotation's splits)")
    p.add_argument("--convention", default=next(iter(CONVENTIONS)), choices=list(CONVENTIONS),
                   help="AP integration and box conventions (zoo.metrics.action_detection)")
    p.add_argument("--linking", default=spec.linking, choices=list(METHODS), help="how per-frame detections "
                   "become tubes: online (ROAD, with temporal trimming; untrimmed videos) or viterbi (whole-video)")
    p.add_argument("--iou", type=float, default=0.5, help="frame-mAP IoU threshold")
    p.add_argument("--out", default=f"runs/benchmark/{spec.name}", help="where results/ and reports/ go")
    p.add_argument("--name", help="detector name in reports (None: the file's stem, the model name or the "
                   "checkpoint's stem)")
    p.add_argument("--compare", nargs="+", metavar="REPORT", default=[], help="other detectors' performance.json "
                   "to draw in the video-mAP-against-delta plot (alone: only that plot)")
    p.add_argument("--skip-bad-rows", action="store_true", help="drop bad rows of a detections file with one "
                   "warning instead of stopping at the first")
    p.add_argument("--workers", type=int, default=2, help="processes for linking, DataLoader workers")
    p.add_argument("--batch-size", type=positive_int, default=16, help="frames per forward pass")
    p.add_argument("--devices", type=devices, default="auto", help="auto, a number of devices, or a list 0,1")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights a --model has no checkpoint for")
    p.add_argument("--flow-folder", help=f"flow images beside the frames (None: the model's flow_folder, else "
                   f"{spec.flow_folder})")
    return p


def compare_only(p: Any, a: Any, spec: DatasetSpec) -> int:
    """``--compare`` alone: the video-mAP-against-delta plot of several reports."""
    reports = [read_report(r) for r in a.compare]
    folder = Path(a.out) / "reports" / "-".join(r["name"] for r in reports)
    path = plot_video_map_delta(reports, folder / "video_map_delta.png")
    for r in reports:
        vm = r["video_map"]
        print(f"{r['name']:<24} f-mAP {_pct(r['frame_map'])}  v-mAP {_pct(vm['0.2'])} {_pct(vm['0.5'])} "
              f"{_pct(vm['0.75'])} {_pct(vm['0.5:0.95'])}  ({r['dataset']} split {r['split']})")
    print(f"plot: {path}")
    return 0


def run_detector_command(p: Any, a: Any, spec: DatasetSpec, annotations: TubeAnnotations, videos: list[str],
                         source: str, split: int | None) -> dict[str, Any] | None:
    """Build the detector ``--model`` or one ``--checkpoint`` names and run it over ``videos``
    (``benchmark_detector``); results in ``<out>/results/<name>/<dataset>[-split<k>]``."""
    import argparse

    from zoo.benchmark.commands.otb import build_model
    from zoo.hub import sha256sum

    if not a.root:
        p.error("running a detector needs --root (the dataset's frames)")
    one = argparse.Namespace(**{**vars(a), "checkpoint": source if a.checkpoint else None})
    model, origin = build_model(p, one)
    try:
        settings = detector_settings(model)
    except ValueError as e:
        p.error(f"{source}: {e}")
    name = _default_name(a)
    folder = Path(a.out) / "results" / name / (spec.name + (f"-split{split}" if split is not None else ""))
    protocol = {"dataset": spec.name, "root": str(Path(a.root).resolve()), "source": origin,
                "annotations_sha256": sha256sum(annotations.source) if annotations.source else None}
    flow_folder = a.flow_folder or settings["flow_folder"] or spec.flow_folder
    return benchmark_detector(model, a.root, annotations, videos, folder, protocol, spec.frames_folder, flow_folder,
                              a.batch_size, a.workers, devices=a.devices)


def run_command(spec: DatasetSpec, argv: Sequence[str]) -> int:
    """``zoo benchmark ucf101-24|jhmdb|ucfsports``: score a detections file or run a detector, print the table, write
    the report and plots."""
    import sys

    p = parser(spec)
    a = p.parse_args(argv)
    if not (a.detections or a.checkpoint or a.model):
        if a.compare:
            return compare_only(p, a, spec)
        p.error("give --detections FILE, --checkpoint CKPT or --model NAME (or --compare REPORT ...)")
    if not 0 < a.iou < 1:
        p.error(f"--iou must be between 0 and 1, not {a.iou}")
    annotations = load_annotations(spec, a.root, a.annotations)
    splits = split_numbers(annotations, a.split)
    sources = a.detections or a.checkpoint or [a.model]
    if len(sources) not in (1, len(splits)):
        p.error(f"{len(sources)} files for {len(splits)} splits: give one, or one per split")
    name = _default_name(a)
    if "/" in name or name.startswith("."):
        p.error(f"--name must be a folder name, not {name!r}")
    compare = [read_report(r) for r in a.compare]
    scored: dict[int, Scored] = {}
    meta: dict[str, Any] = {"sources": [str(s) for s in sources]}
    loaded: dict[str, tuple[str, dict[str, Any]]] = {}
    for k, split in enumerate(splits):
        source = sources[k if len(sources) > 1 else 0]
        videos = annotations.test_videos(split)
        if source not in loaded:
            t0 = time.perf_counter()
            if a.detections:
                loaded[source] = read_detections(source, annotations, a.skip_bad_rows)
                meta["seconds_reading"] = meta.get("seconds_reading", 0.0) + time.perf_counter() - t0
            else:  # one model: every split's test videos in one run; one checkpoint per split: its own videos
                wanted = videos if len(sources) > 1 else list(dict.fromkeys(
                    v for s in splits for v in annotations.test_videos(s)))
                run = run_detector_command(p, a, spec, annotations, wanted, source, split if len(sources) > 1 else None)
                if run is None:
                    return 0  # not rank 0
                loaded[source] = ("frames", run["detections"])
                meta.setdefault("runs", []).append(run["meta"])
                if run["meta"]["unreadable_frames_rank0"]:
                    print(f"warning: {run['meta']['unreadable_frames_rank0']} frames could not be read and have no "
                          "detections (each named in a warning above)", file=sys.stderr)
                resumed = run["meta"]["resumed_videos"]
                if resumed:
                    print(f"resumed: {resumed} of {len(wanted)} videos were already done in "
                          f"{run['meta']['results_dir']}", file=sys.stderr)
        kind, data = loaded[source]
        scored[split] = score_split(annotations, videos, kind, data, a.convention, a.linking, a.iou, a.workers)
        missing = scored[split].report["num_videos"] - scored[split].report["num_videos_with_detections"]
        if missing and a.detections:
            print(f"warning: {missing} of {len(videos)} split-{split} test videos have no detections in {source} "
                  "(scored as misses)", file=sys.stderr)
    report = build_report(spec, annotations, name, a.split, scored, a.convention, a.linking, a.iou, meta)
    folder = Path(a.out) / "reports" / name / report_key(spec, a.split, a.convention, a.linking, a.iou, kind)
    path = write_report(report, folder, compare)
    if kind == "frames":  # the linked tubes, in the format --detections reads (re-score them without linking)
        for split, s in scored.items():
            write_tubes_json(folder / f"tubes_split{split}.json", s.tubes, annotations.classes)
    print(format_table(report))
    print(f"report: {path} (class_ap.png, video_map_delta.png" + (", the linked tubes_split*.json" if kind == "frames"
                                                                 else "") + " beside it)")
    return 0
