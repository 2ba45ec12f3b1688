"""``zoo prepare ucf101-24 --videos UCF101/ --out R``: the ``R/rgb-images/<Class>/<video>/%05d.jpg`` frames of ROAD's
UCF101-24 release, extracted from the UCF101 ``.avi`` files of its 24 classes with the zoo's video reader.

Frames are numbered from 1 at the videos' native 320 x 240, every decodable frame, JPEG quality 95. A video is
written into a hidden temporary folder renamed into place when complete, so an interrupted run resumes and the
loaders never see half a video. Flow images then come from ``zoo prepare flow --root R --out R/fastOF-images``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datamodules.action_tubes import UCF24_CLASSES, read_split_list
from datamodules.flow_images import JPEG_QUALITY, run_parallel, write_jpeg
from datamodules.video import BACKENDS, open_video
from zoo.errors import DatasetError, ZooError

UCF101_NAME = re.compile(r"v_([A-Za-z]+)_g\d+_c\d+")
CHUNK = 64  # frames decoded at a time


def find_ucf101_videos(videos: str | os.PathLike, classes: Sequence[str] = UCF24_CLASSES) -> dict[str, Path]:
    """``{"<Class>/<video>": path}`` of the UCF101 ``.avi`` files under ``videos`` (any depth) whose class, read from
    the file name ``v_<Class>_gNN_cNN.avi``, is one of ``classes``."""
    root = Path(videos)
    if not root.is_dir():
        raise DatasetError(f"{root}: UCF101 video folder not found")
    wanted = set(classes)
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.avi")):
        match = UCF101_NAME.fullmatch(path.stem)
        if match and match.group(1) in wanted:
            found.setdefault(f"{match.group(1)}/{path.stem}", path)
    return found


def extract_video(path: str | os.PathLike, target: str | os.PathLike, backend: str = "decord",
                  quality: int = JPEG_QUALITY) -> int:
    """Write every frame of video ``path`` as ``target/%05d.jpg`` (from 1); returns the frame count, 0 when
    ``target`` already exists (a finished video). The frames go to a hidden folder renamed to ``target`` at the
    end."""
    target = Path(target)
    if target.is_dir():
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.partial"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        with open_video(path, backend=backend) as video:
            n = len(video)
            for start in range(0, n, CHUNK):
                for t, frame in enumerate(video.get_frames(np.arange(start, min(start + CHUNK, n))), start + 1):
                    write_jpeg(partial / f"{t:05d}.jpg", frame, quality)
        os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return n


def _extract_one(job: tuple[str, str, str, str, int]) -> tuple[str, int, str | None]:
    name, path, target, backend, quality = job
    try:
        return name, extract_video(path, target, backend, quality), None
    except (ZooError, OSError) as e:
        text = str(e).strip().splitlines()
        return name, 0, text[0] if text else type(e).__name__


def prepare_ucf101_24(
    videos: str | os.PathLike,
    out: str | os.PathLike,
    workers: int = 1,
    names: Sequence[str] | None = None,
    backend: str = "decord",
    quality: int = JPEG_QUALITY,
    progress: bool | None = None,
) -> tuple[int, list[str]]:
    """Extract ``out/rgb-images/<Class>/<video>/%05d.jpg`` for the UCF101-24 videos under ``videos`` (``names``:
    only these ``Class/video`` names, such as a split list's). Returns (videos extracted in this run, one line per
    failed or missing video)."""
    found = find_ucf101_videos(videos)
    wanted = list(found) if names is None else list(dict.fromkeys(names))
    failed = [f"{name}: no {Path(name).name}.avi under {videos}" for name in wanted if name not in found]
    frames = Path(out) / "rgb-images"
    jobs = [(name, str(found[name]), str(frames / name), backend, quality) for name in wanted if name in found]
    from tqdm import tqdm

    done = 0
    bar = tqdm(total=len(jobs), desc="zoo prepare ucf101-24", unit="video", leave=False,
               disable=not (sys.stderr.isatty() if progress is None else progress))
    with bar:
        for name, count, error in run_parallel(_extract_one, jobs, workers):
            bar.update(1)
            if error is not None:
                failed.append(error if name in error else f"{name}: {error}")
            done += count > 0
    return done, failed


def frame_count_mismatches(out: str | os.PathLike, annotation: str | os.PathLike) -> list[str]:
    """One line per extracted video whose frame count differs from ``numf`` in ROAD's ``pyannot.pkl`` (its boxes
    are numbered by frame, so a decoder that yields another count shifts or cuts them)."""
    from datamodules.action_tubes import read_pyannot

    ann = read_pyannot(annotation, on_missing="skip")
    frames = Path(out) / "rgb-images"
    lines = []
    for name, video in ann.videos.items():
        folder = frames / name
        if folder.is_dir():
            n = sum(1 for p in folder.iterdir() if p.suffix == ".jpg" and not p.name.startswith("."))
            if n != video.num_frames:
                lines.append(f"{folder}: {n} frames extracted, {annotation} says {video.num_frames}")
    return lines


def main(argv: Sequence[str]) -> int:
    """``zoo prepare ucf101-24 --videos UCF101/ --out R [--list FILE ...] [--workers N]``."""
    from zoo.commands import ArgumentParser, positive_int

    p = ArgumentParser(
        prog="zoo prepare ucf101-24",
        description="Extract ROAD's UCF101-24 frames, OUT/rgb-images/<Class>/<video>/%05d.jpg, from the UCF101 "
        ".avi files of its 24 classes. Resumable: finished videos are kept. Exit status 1 when a video failed.",
    )
    p.add_argument("--videos", required=True, help="the UCF101 folder (UCF-101/<Class>/v_*.avi, any depth)")
    p.add_argument("--out", required=True, help="the UCF101-24 root; frames go to OUT/rgb-images")
    p.add_argument("--list", nargs="+", default=None, metavar="FILE",
                   help="only the videos of these split lists (trainlist01.txt, testlist01.txt); when not given, all")
    p.add_argument("--workers", type=positive_int, default=max((os.cpu_count() or 2) - 1, 1))
    p.add_argument("--backend", default="decord", choices=BACKENDS)
    p.add_argument("--quality", type=positive_int, default=JPEG_QUALITY, help="JPEG quality")
    p.add_argument("--annotations", default=None, metavar="PYANNOT",
                   help="ROAD's pyannot.pkl: afterwards, name every extracted video whose frame count differs from it")
    a = p.parse_args(argv)
    names = None if a.list is None else list(dict.fromkeys(n for f in a.list for n in read_split_list(f)))
    done, failed = prepare_ucf101_24(a.videos, a.out, a.workers, names, a.backend, a.quality)
    total = len(names) if names is not None else len(find_ucf101_videos(a.videos))
    print(f"{Path(a.out) / 'rgb-images'}: {total} UCF101-24 videos: {done} extracted, "
          f"{total - done - len(failed)} already there, {len(failed)} failed")
    for line in failed:
        print(f"  failed: {line}")
    mismatched = frame_count_mismatches(a.out, a.annotations) if a.annotations else []
    for line in mismatched:
        print(f"  frame count: {line}")
    return 1 if failed or mismatched else 0
