"""Optical-flow images in the format ROAD and Two-in-One read: one 3-channel 8-bit JPEG per frame.

Layout: frame ``t`` of ``<frames>/<rel>/%05d.jpg|png`` gets ``<out>/<rel>/%05d.jpg`` = the flow from frame ``t`` to
frame ``t+1``; the last frame repeats the previous pair's flow, so a video has as many flow images as frames
(gurkirt/optical-flow ``src/main.cpp``: its last iteration recomputes the pair ``(n-2, n-1)``).

Encoding (Gkioxari's ActionTubes ``compute_OF/compute_flow.m``, and Singh's gurkirt/optical-flow ``getFlowAsImage``,
which wrote ROAD's flow images): channel R = x, G = y, B = magnitude, each ``round(128 + v * 128 / bound)``
clipped to [0, 255] with ``bound = 8`` pixels (``max_flow = 8``; ``--bound 8``). Magnitude is never below 128.
TSN's ``dense_flow`` (``255 * (v + 20) / 40``, one grey image per component) is a different convention.

Methods (OpenCV, on the grey frames as ROAD's code reads them):

- ``dis``: Dense Inverse Search (Kroeger et al., ECCV 2016), the real-time flow behind ROAD's and Two-in-One's
  ``fastOF-images``. Which operating point ROAD ran is not published; the default ``fast`` preset is the one
  closest to Kroeger's own default (``run_dense.cpp`` operating point 2: 8-pixel patches, finest scale two
  levels below the coarsest, variational refinement on).
- ``farneback``: OpenCV's CUDA defaults that gurkirt/optical-flow used (5 levels, pyramid scale 0.5, window 13,
  10 iterations, poly_n 5, poly_sigma 1.1).
- ``tvl1``: Zach et al.'s TV-L1 (the I3D / ACT-era flow) through ``cv2.optflow`` of opencv-contrib, only when
  that package is installed (``pip install opencv-contrib-python-headless`` of the same version).
- ``tvl1_torch``: the same TV-L1 in PyTorch (``zoo.nn.tvl1``, tested against OpenCV's), with no opencv-contrib:
  one pair at a time in the worker processes, or batches of pairs on a GPU (``--device cuda``).

``zoo prepare flow --root R --out F --method dis`` runs :func:`prepare_flow`: resumable (existing images are kept,
each file is written atomically), worker processes, a progress bar, and one line per failed video; ``--method
tvl1_torch --device cuda`` computes batches of pairs on the GPU in the main process instead.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from datamodules.video import IMAGE_EXTENSIONS, read_rgb
from zoo.errors import DatasetError, VideoReadError, ZooError
from zoo.hub import atomic_write_bytes
from zoo.nn.tvl1 import TVL1, tvl1_flow

log = logging.getLogger(__name__)

METHODS = ("dis", "farneback", "tvl1", "tvl1_torch")
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
FLOW_BOUND = 8.0  # pixels mapped to the ends of the 8-bit range (ActionTubes max_flow, gurkirt/optical-flow --bound)
FLOW_CENTER = 128.0  # the value of zero flow
JPEG_QUALITY = 95  # cv::imwrite's default, which wrote ROAD's flow JPEGs
FRAME_FOLDERS = ("rgb-images", "Frames")  # UCF101-24 (ROAD) and ACT (J-HMDB, UCF-Sports) layouts
# OpenCV cuda::FarnebackOpticalFlow::create() defaults, as gurkirt/optical-flow used them
FARNEBACK = {"pyr_scale": 0.5, "levels": 5, "winsize": 13, "iterations": 10, "poly_n": 5, "poly_sigma": 1.1, "flags": 0}


def tvl1_available() -> bool:
    """Whether TV-L1 can run here (``cv2.optflow`` comes with opencv-contrib only)."""
    return hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")


def check_method(method: str, dis_preset: str = "fast") -> None:
    """A one-line error for an unknown method or preset, or for TV-L1 without opencv-contrib."""
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "dis" and dis_preset not in DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {dis_preset!r}; choose one of {', '.join(DIS_PRESETS)}")
    if method == "tvl1" and not tvl1_available():
        raise ZooError(f"TV-L1 flow needs opencv-contrib (cv2.optflow), not installed with OpenCV {cv2.__version__}: "
                       f"pip install opencv-contrib-python-headless=={cv2.__version__}.*, or use --method dis")


@functools.cache
def _dis(preset: str) -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(DIS_PRESETS[preset])


@functools.cache
def _tvl1():  # noqa: ANN202  (cv2.optflow exists only with opencv-contrib)
    return cv2.optflow.DualTVL1OpticalFlow_create()


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a uint8 H x W x 3 RGB frame, got {image.dtype} {image.shape}")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def compute_flow(prev_rgb: np.ndarray, next_rgb: np.ndarray, method: str = "dis", dis_preset: str = "fast"
                 ) -> np.ndarray:
    """The optical flow from ``prev_rgb`` to ``next_rgb`` (uint8 H x W x 3 RGB, or H x W grey) as H x W x 2 float32
    pixels, channel 0 = x (right positive), channel 1 = y (down positive)."""
    check_method(method, dis_preset)
    a, b = _grey(prev_rgb), _grey(next_rgb)
    if a.shape != b.shape:
        raise ValueError(f"frames of different sizes: {a.shape[:2]} and {b.shape[:2]}")
    if method == "dis":
        flow = _dis(dis_preset).calc(a, b, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, **FARNEBACK)
    elif method == "tvl1_torch":
        flow = tvl1_flow(torch.from_numpy(a)[None].float(), torch.from_numpy(b)[None].float())[0].permute(1, 2, 0)
    else:
        flow = _tvl1().calc(a, b, None)
    return np.asarray(flow, dtype=np.float32)


def flow_to_image(flow: np.ndarray, bound: float = FLOW_BOUND, center: float = FLOW_CENTER) -> np.ndarray:
    """H x W x 2 flow -> H x W x 3 uint8 (x, y, magnitude), each ``round(center + v * 128 / bound)`` in [0, 255].

    Gkioxari's ``compute_flow.m`` / gurkirt/optical-flow ``getFlowAsImage`` with their ``bound = 8`` (the C++ code
    divides the integers ``128 / bound``, equal to this for bounds that divide 128)."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"expected an H x W x 2 flow field, got shape {flow.shape}")
    if bound <= 0:
        raise ValueError(f"bound must be above zero, not {bound}")
    magnitude = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2)
    values = np.concatenate([flow, magnitude[..., None]], axis=2) * (128.0 / bound) + center
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def image_to_flow(image: np.ndarray, bound: float = FLOW_BOUND, center: float = FLOW_CENTER) -> np.ndarray:
    """The inverse of :func:`flow_to_image` for the x and y channels: H x W x 2 float32 pixels (clipped flow stays
    at +-bound)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 2:
        raise ValueError(f"expected an H x W x 3 flow image, got shape {image.shape}")
    return ((image[..., :2].astype(np.float32) - center) * (bound / 128.0)).astype(np.float32)


def flow_image(prev_rgb: np.ndarray, next_rgb: np.ndarray, method: str = "dis", bound: float = FLOW_BOUND,
               dis_preset: str = "fast") -> np.ndarray:
    """The flow image (H x W x 3 uint8, R = x, G = y, B = magnitude) of the pair ``prev_rgb -> next_rgb``."""
    return flow_to_image(compute_flow(prev_rgb, next_rgb, method, dis_preset), bound)


# ---------------------------------------------------------------------------------------------- folders of frames


def _natural(name: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t)


def _matches(name: str, pattern: str | None) -> bool:
    if pattern is None:
        return name.lower().endswith(IMAGE_EXTENSIONS)
    return Path(name).match(pattern)


def frame_files(folder: str | os.PathLike, pattern: str | None = None) -> list[str]:
    """The frame images of one video folder in number order (``pattern``: a glob such as ``*.png``; default any
    image)."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.is_file() and not e.name.startswith(".") and _matches(e.name, pattern)]
    return sorted(names, key=_natural)


def frames_root(root: str | os.PathLike, frames_folder: str | None = None) -> Path:
    """Where the video folders are: ``root/frames_folder``; by default ``rgb-images`` (UCF101-24) or ``Frames``
    (ACT) when present, else ``root`` itself."""
    root = Path(root)
    if frames_folder is not None:
        folder = root / frames_folder
    else:
        folder = next((root / f for f in FRAME_FOLDERS if (root / f).is_dir()), root)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: frames folder not found")
    return folder


def find_video_folders(folder: str | os.PathLike, pattern: str | None = None,
                       exclude: str | os.PathLike | None = None) -> list[str]:
    """Relative paths (``Class/video`` or ``video``) of the folders under ``folder`` that hold frame images,
    sorted; ``exclude`` (an output folder inside ``folder``) and hidden folders are not searched."""
    folder = Path(folder)
    skip = Path(exclude).resolve() if exclude is not None else None
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if skip is not None and here.resolve() == skip:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # hidden: unfinished extractions
        if any(not f.startswith(".") and _matches(f, pattern) for f in filenames):
            found.append(here.relative_to(folder).as_posix())
    return sorted(found)


@dataclass(frozen=True)
class FlowJob:
    """One video's flow: frames ``source/files`` -> images in ``target``."""

    rel: str
    source: str
    target: str
    files: tuple[str, ...]
    method: str = "dis"
    bound: float = FLOW_BOUND
    dis_preset: str = "fast"
    quality: int = JPEG_QUALITY
    device: str | None = None  # tvl1_torch: a torch device for batches of pairs, in this process
    batch: int = 64


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Write an RGB image as JPEG atomically (a temporary file in the same folder, then a rename; no fsync, unlike
    ``zoo.hub.atomic_write_bytes``: a dataset's flow is hundreds of thousands of small files)."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.tobytes())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def flow_targets(job: FlowJob) -> list[Path]:
    """The flow image of each frame: the frame's name with ``.jpg``."""
    return [Path(job.target) / (Path(name).stem + ".jpg") for name in job.files]


def run_job(job: FlowJob) -> tuple[str, int, str | None]:
    """Write the missing flow images of one video; returns (rel, images written, one-line error or None)."""
    targets = flow_targets(job)
    todo = [i for i, t in enumerate(targets) if not t.is_file()]
    if not todo:
        return job.rel, 0, None
    n = len(job.files)
    if n < 2:
        return job.rel, 0, f"{job.source}: {n} frame image, flow needs at least 2"
    if job.method == "tvl1_torch" and multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)  # one thread per worker process, as OpenCV's methods run in them
    frames: dict[int, np.ndarray] = {}
    written = 0

    def frame(i: int) -> np.ndarray:
        if i not in frames:
            if len(frames) > 2:  # pairs go forward: only the last frames are read again
                frames.clear()
            frames[i] = read_rgb(Path(job.source) / job.files[i])
        return frames[i]

    try:
        if job.device is not None:
            return job.rel, run_batched(job, targets, todo), None
        for i in todo:
            a = min(i, n - 2)  # the last frame repeats the flow of the pair before it
            try:
                image = flow_image(frame(a), frame(a + 1), job.method, job.bound, job.dis_preset)
            except ValueError as e:
                raise VideoReadError(f"{Path(job.source) / job.files[a + 1]}: {e}") from None
            write_jpeg(targets[i], image, job.quality)
            written += 1
    except (ZooError, OSError, cv2.error) as e:
        text = str(e).strip().splitlines()
        return job.rel, written, text[0] if text else type(e).__name__
    return job.rel, written, None


def run_batched(job: FlowJob, targets: list[Path], todo: list[int]) -> int:
    """The missing images of ``job`` by ``tvl1_torch`` on ``job.device``, ``job.batch`` pairs a call; returns how many
    were written. The grey frames are read once, in order; images are written as their batch finishes."""
    n = len(job.files)
    first = [min(i, n - 2) for i in todo]  # the last frame repeats the flow of the pair before it
    grey: dict[int, torch.Tensor] = {}
    size: tuple[tuple[int, ...], str] | None = None  # the first frame read: its shape and name
    written = 0
    for start in range(0, len(todo), job.batch):
        rows = list(range(start, min(start + job.batch, len(todo))))
        for a in sorted({first[r] + d for r in rows for d in (0, 1)} - set(grey)):
            path = Path(job.source) / job.files[a]
            grey[a] = torch.from_numpy(_grey(read_rgb(path)))
            size = size or (tuple(grey[a].shape), path.name)
            if tuple(grey[a].shape) != size[0]:
                raise VideoReadError(f"{path}: {tuple(grey[a].shape)} pixels, but {size[1]} has {size[0]}")
        pairs = [torch.stack([grey[first[r]] for r in rows]), torch.stack([grey[first[r] + 1] for r in rows])]
        try:
            fields = tvl1_flow(*(p.to(job.device).float() for p in pairs), TVL1(check_every=10))
        except ValueError as e:  # frames too small for TV-L1: this video fails, the others go on
            raise VideoReadError(f"{Path(job.source) / job.files[first[rows[0]]]}: {e}") from None
        fields = fields.permute(0, 2, 3, 1)
        for r, field in zip(rows, fields.cpu().numpy()):
            write_jpeg(targets[todo[r]], flow_to_image(field, job.bound), job.quality)
            written += 1
        keep = min(first[r] for r in range(rows[-1] + 1, len(todo))) if rows[-1] + 1 < len(todo) else n
        grey = {a: g for a, g in grey.items() if a >= keep}
    return written


SETTINGS_FILE = "flow.json"


def read_settings(folder: str | os.PathLike) -> dict[str, Any] | None:
    """How the flow images of ``folder`` were made (its ``flow.json``), or None without one; an unreadable file is a
    DatasetError naming it."""
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError):
        settings = None
    if not isinstance(settings, dict):
        raise DatasetError(f"{path}: unreadable flow settings (expected a JSON object; delete the file to start "
                           "again)")
    return settings


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record how the images in ``out`` are made (``flow.json``, written atomically before the first image), or,
    when ``out`` has a record, refuse other settings in one line: a resumed run never mixes two kinds of flow."""
    have = read_settings(out)
    if have is not None:
        differ = [f"{k} {have.get(k)!r} there, {v!r} asked" for k, v in settings.items() if have.get(k) != v]
        if differ:
            raise DatasetError(f"{out}: holds flow made with other settings ({'; '.join(differ)}); pass another "
                               "--out or the same settings")
        return
    atomic_write_bytes(out / SETTINGS_FILE, json.dumps(settings, indent=1).encode())


def prepare_flow(
    root: str | os.PathLike,
    out: str | os.PathLike,
    method: str = "dis",
    workers: int = 1,
    frames_folder: str | None = None,
    pattern: str | None = None,
    *,
    videos: Sequence[str] | None = None,
    bound: float = FLOW_BOUND,
    dis_preset: str = "fast",
    quality: int = JPEG_QUALITY,
    progress: bool | None = None,
    device: str | None = None,
    batch: int = 64,
) -> tuple[int, list[str]]:
    """Flow images for every frame of every video folder under ``root`` (see :func:`frames_root`), written to
    ``out/<same relative path>/<frame name>.jpg``.

    Returns (videos for which images were written in this run, one line per failed video). Images already there
    are kept, so a second run does nothing and an interrupted one resumes. ``videos``: relative paths to do
    (default: every folder found). ``progress``: a progress bar (default: when stderr is a terminal). ``device``:
    ``tvl1_torch`` in this process on that torch device (a GPU), ``batch`` pairs at a time, instead of workers."""
    check_method(method, dis_preset)
    if device is not None and method != "tvl1_torch":
        raise ValueError(f"device is for the tvl1_torch method, not {method!r}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    if device is not None:  # a device that cannot be used is one line before anything is written
        try:
            torch.zeros(1, device=device)
        except (RuntimeError, AssertionError) as e:
            raise ValueError(f"device {device!r} cannot be used here: {str(e).strip().splitlines()[0]}") from None
    source = frames_root(root, frames_folder)
    out = Path(out)
    check_settings(out, {"method": method, "bound": bound, "dis_preset": dis_preset if method == "dis" else None,
                         "quality": quality})
    rels = list(videos) if videos is not None else find_video_folders(source, pattern, exclude=out)
    jobs, failed = [], []
    for rel in rels:
        folder = source / rel
        if not folder.is_dir():
            failed.append(f"{folder}: video folder not found")
            continue
        jobs.append(FlowJob(rel, str(folder), str(out / rel), tuple(frame_files(folder, pattern)), method, bound,
                            dis_preset, quality, device, batch))
    done = 0
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=f"zoo prepare flow ({method})", unit="video", leave=False,
               disable=not (sys.stderr.isatty() if progress is None else progress))
    with bar:
        for rel, written, error in run_parallel(run_job, jobs, 1 if device is not None else workers):
            bar.update(1)
            if error is None:
                done += written > 0
            else:
                failed.append(error if rel in error else f"{rel}: {error}")
                log.warning("flow not written: %s", failed[-1])
    return done, failed


def run_parallel(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int) -> Iterator[Any]:
    """``fn`` over ``jobs`` in ``workers`` processes (in this one when 1), results as they finish."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    # no cv2.setNumThreads(1) in the workers: called in a forked child of a process whose OpenCV thread pool ran,
    # it deadlocks (OpenCV 5.0)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(fn, job) for job in jobs]):
            yield future.result()


def main(argv: Sequence[str]) -> int:
    """``zoo prepare flow --root R --out F [--method dis|farneback|tvl1|tvl1_torch] [--workers N]``."""
    from zoo.commands import ArgumentParser, positive_int

    p = ArgumentParser(
        prog="zoo prepare flow",
        description="Optical-flow JPEGs for every frame of every video folder under --root, in the format ROAD "
        "and Two-in-One read (R = x, G = y, B = magnitude, 128 + v * 128 / bound). Resumable: images already "
        "written are kept. Exit status 1 when a video failed (each one is named on its own line).",
    )
    p.add_argument("--root", required=True, help="dataset root holding rgb-images/ (UCF101-24) or Frames/ (ACT)")
    p.add_argument("--out", required=True, help="output folder, such as ROOT/fastOF-images or ROOT/FlowDIS")
    p.add_argument("--method", default="dis", choices=METHODS, help="dis is the fast flow behind fastOF-images")
    p.add_argument("--workers", type=positive_int, default=max((os.cpu_count() or 2) - 1, 1))
    p.add_argument("--frames-folder", default=None,
                   help="the folder of video folders in --root; when not given, rgb-images or Frames, whichever exists")
    p.add_argument("--pattern", default=None, help="glob of frame files, such as '*.png'; when not given, any image")
    p.add_argument("--bound", type=float, default=FLOW_BOUND, help="flow in pixels mapped to 0 and 255")
    p.add_argument("--dis-preset", default="fast", choices=tuple(DIS_PRESETS))
    p.add_argument("--quality", type=positive_int, default=JPEG_QUALITY, help="JPEG quality")
    p.add_argument("--device", default=None, help="tvl1_torch on this torch device (such as cuda), in batches of "
                   "--batch pairs, instead of --workers processes")
    p.add_argument("--batch", type=positive_int, default=64, help="pairs a call with --device")
    a = p.parse_args(argv)
    if a.bound <= 0:
        p.error(f"--bound must be above zero, not {a.bound}")
    check_method(a.method, a.dis_preset)
    if a.device is not None and a.method != "tvl1_torch":
        p.error(f"--device is for --method tvl1_torch, not {a.method}")
    source = frames_root(a.root, a.frames_folder)
    videos = find_video_folders(source, a.pattern, exclude=a.out)
    if not videos:
        raise DatasetError(f"{source}: no folders of frame images{f' matching {a.pattern}' if a.pattern else ''}")
    done, failed = prepare_flow(a.root, a.out, a.method, a.workers, a.frames_folder, a.pattern, videos=videos,
                                bound=a.bound, dis_preset=a.dis_preset, quality=a.quality, device=a.device,
                                batch=a.batch)
    kept = len(videos) - done - len(failed)
    print(f"{a.out}: {a.method} flow for {len(videos)} videos in {source}: {done} written, {kept} already complete, "
          f"{len(failed)} failed")
    for line in failed:
        print(f"  failed: {line}")
    return 1 if failed else 0
