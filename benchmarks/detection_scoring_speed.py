"""Seconds to score the whole UCF101-24 test split (split 1 of the real ``pyannot.pkl``, 910 videos) from a
per-frame detections file, stage by stage: reading the CSV, linking tubes (ROAD's online linking), frame-mAP and
video-mAP (19 deltas 0.05..0.95 plus the table's), as ``zoo benchmark ucf101-24 --detections FILE`` runs them.

    python benchmarks/detection_scoring_speed.py [--annotations ../shared/data/ucf101_24/pyannot.pkl]
        [--per-frame 20] [--workers 2] [--linking online]

The detections are made from the ground truth: every ground-truth box jittered (about 4 % of its size) with a
score drawn from U(0.5, 1), dropped with probability 0.1, plus false detections (random class, box and score
U(0, 0.6)) on every frame of the video up to ``--per-frame`` rows a frame; written once to ``--file`` (the
writing is set-up, not timed).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from video_decode import cpu_name  # noqa: E402  (this folder is on sys.path when the script runs)

from zoo.benchmark.action_detection import DATASETS, load_annotations, score_split  # noqa: E402
from zoo.benchmark.detection_files import read_frame_detections_csv, write_frame_detections_csv  # noqa: E402
from zoo.hub import sha256sum  # noqa: E402


def noisy_detections(annotations, videos: list[str], per_frame: int, seed: int) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Ground truth plus noise, misses and false detections, (M, 7) rows per video."""
    rng = np.random.default_rng(seed)
    classes = len(annotations.classes)
    h, w = 240.0, 320.0
    out = {}
    for v in videos:
        info = annotations.videos[v]
        parts = []
        for t in info.tubes:
            b = t.boxes[rng.random(len(t.boxes)) > 0.1]
            size = np.maximum(b[:, 3:5] - b[:, 1:3], 1.0)
            boxes = b[:, 1:5] + rng.normal(0, 0.04, (len(b), 4)) * np.tile(size, 2)
            boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
            parts.append(np.column_stack([b[:, 0], np.full(len(b), t.label), rng.uniform(0.5, 1, len(b)), boxes]))
        true_rows = sum(len(p) for p in parts)
        n = max(per_frame * info.num_frames - true_rows, 0)
        xy = rng.uniform(0, 1, (n, 2)) * [w - 20, h - 20]
        wh = rng.uniform(20, 120, (n, 2))
        false = np.column_stack([rng.integers(1, info.num_frames + 1, n), rng.integers(0, classes, n),
                                 rng.uniform(0, 0.6, n), xy, np.minimum(xy + wh, [w, h])])
        rows = np.concatenate(parts + [false])
        out[v] = rows[np.argsort(rows[:, 0], kind="stable")]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--annotations", default=str(ROOT.parent / "shared/data/ucf101_24/pyannot.pkl"))
    p.add_argument("--per-frame", type=int, default=20, help="detections per frame")
    p.add_argument("--workers", type=int, default=2, help="linking processes (the command's --workers)")
    p.add_argument("--linking", default="online", choices=["online", "viterbi"])
    p.add_argument("--convention", default="act")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--file", default="/tmp/zoo_ucf24_test_detections.csv", help="the detections file (made once)")
    a = p.parse_args()

    t0 = time.perf_counter()
    ann = load_annotations(DATASETS["ucf101-24"], None, a.annotations)
    videos = ann.test_videos(1)
    t_ann = time.perf_counter() - t0
    path = Path(a.file)
    stamp = path.with_suffix(f".{a.per_frame}-{a.seed}-{sha256sum(a.annotations)[:12]}.ok")  # what made the file
    if not (path.is_file() and stamp.is_file()):
        for old in path.parent.glob(path.stem + ".*.ok"):
            old.unlink()
        t0 = time.perf_counter()
        write_frame_detections_csv(path, noisy_detections(ann, videos, a.per_frame, a.seed), ann.classes)
        stamp.write_text("made\n")
        print(f"(made {path}, {path.stat().st_size / 1e6:.0f} MB, in {time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    detections = read_frame_detections_csv(path, ann)
    t_read = time.perf_counter() - t0
    rows = sum(len(d) for d in detections.values())
    frames = sum(ann.videos[v].num_frames for v in videos)
    scored = score_split(ann, videos, "frames", detections, a.convention, a.linking, 0.5, a.workers)
    r, s = scored.report, scored.report["seconds"]
    total = t_read + sum(s.values())
    print(f"UCF101-24 split 1: {len(videos)} test videos, {frames} frames, {rows} detections "
          f"({rows / frames:.1f} a frame), {r['num_tubes']} linked tubes")
    print(f"hardware: {cpu_name()}, {os.cpu_count()} cores; linking workers {a.workers}; "
          f"python {platform.python_version()}")
    print(f"  annotations   {t_ann:7.2f} s")
    print(f"  reading CSV   {t_read:7.2f} s")
    print(f"  linking       {s['linking']:7.2f} s  ({a.linking})")
    print(f"  frame-mAP     {s['frame_map']:7.2f} s")
    print(f"  video-mAP     {s['video_map']:7.2f} s  (19 deltas)")
    print(f"  total         {total:7.2f} s")
    vm = r["video_map"]
    print(f"scores ({a.convention}): frame-mAP {100 * r['frame_map']:.2f}, video-mAP {100 * vm['0.2']:.2f} / "
          f"{100 * vm['0.5']:.2f} / {100 * vm['0.75']:.2f} / {100 * vm['0.5:0.95']:.2f}")


if __name__ == "__main__":
    main()
