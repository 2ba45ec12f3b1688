"""The files of spatio-temporal action detection results: detections to score and a detector's per-video results.

**Detection files** (``--detections FILE``, chosen by extension; both name videos as the annotation does, e.g.
``Basketball/v_Basketball_g01_c01`` for UCF101-24, and number frames as it does, 1-based):

- ``.csv``: per-frame detections, one per row ``video,frame,label,score,x1,y1,x2,y2`` (a header row with these
  names is optional); ``label`` is the class name or its 0-based index in the annotation's class list; boxes in
  pixels of the original frame, ``x1 <= x2``, ``y1 <= y2``.
- ``.json``: tubes, ``{video: [{"label": ..., "score": ..., "boxes": [[frame, x1, y1, x2, y2], ...]}, ...]}``,
  frames strictly increasing within a tube.

A bad row (unknown video or class, a frame outside the video, a wrong number of fields, a value that is not a
finite number, ``x2 < x1``) is one DatasetError naming ``file:line`` (``file: videos[V][k]`` for JSON). With
``skip_bad=True`` (``--skip-bad-rows``) such rows are dropped, counted and reported in one warning instead: for a
long detector run whose file has a few damaged rows.

A detector run (``zoo.benchmark.detector_run``) writes one ``<video>.csv`` per video: header
``frame,label,score,x1,y1,x2,y2`` and a row per detection.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.action_tubes import Tube, TubeAnnotations
from zoo.errors import DatasetError, parse_error
from zoo.hub import atomic_write_bytes

log = logging.getLogger(__name__)

CSV_COLUMNS = ("video", "frame", "label", "score", "x1", "y1", "x2", "y2")
RESULT_COLUMNS = CSV_COLUMNS[1:]

class _Rows:
    """Bad rows of a detection file: raised at once, or (``skip``) dropped, counted and warned about once."""

    def __init__(self, path: Path, skip: bool) -> None:
        self.path, self.skip = path, skip
        self.count, self.first = 0, ""

    def bad(self, where: str, message: str) -> None:
        if not self.skip:
            raise DatasetError(f"{self.path}:{where}: {message}")
        self.count += 1
        self.first = self.first or f"{where}: {message}"

    def warn(self) -> int:
        if self.count:
            log.warning("%s: skipped %d bad rows (first at %s)", self.path, self.count, self.first)
        return self.count


@contextmanager
def _no_gc() -> Iterator[None]:
    """Millions of small strings: the cyclic collector only slows their making."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _label_lookup(classes: Sequence[str]) -> dict[str, int]:
    """A label's spellings: the class name or its 0-based index."""
    return {**{str(i): i for i in range(len(classes))}, **{name: i for i, name in enumerate(classes)}}


def read_utf8(path: Path, what: str = "detections file") -> str:
    """A text file's contents; a missing file or one that is not UTF-8 is a DatasetError naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise parse_error(path, data[: e.start].count(b"\n") + 1, "not UTF-8 text") from None


def _numbers_slowly(lines: list[str], rows: _Rows, line_nos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numeric fields row by row (when the fast parse failed): values and a mask of the rows that parse."""
    values = np.zeros((len(lines), 6))
    ok = np.ones(len(lines), dtype=bool)
    for i, line in enumerate(lines):
        fields = line.split(",")
        try:
            values[i] = [float(fields[k]) for k in (1, 3, 4, 5, 6, 7)]
        except ValueError:
            bad = next(fields[k] for k in (1, 3, 4, 5, 6, 7) if not _is_float(fields[k]))
            rows.bad(str(line_nos[i]), f"not a number: {bad.strip()[:40]!r}")
            ok[i] = False
    return values, ok


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _data_lines(path: Path, text: str) -> tuple[list[str], np.ndarray]:
    """The data rows of a CSV (header and blank lines left out) and their 1-based line numbers."""
    lines = text.splitlines()
    line_nos = np.arange(1, len(lines) + 1)
    if "" in lines or any(not line.strip() for line in lines[:1]):
        keep = np.fromiter((bool(line.strip()) for line in lines), dtype=bool, count=len(lines))
        lines = [line for line, k in zip(lines, keep) if k]
        line_nos = line_nos[keep]
    if lines and lines[0].split(",", 1)[0].strip().strip('"').lower() == "video":
        header = tuple(f.strip().strip('"').lower() for f in lines[0].split(","))
        if header != CSV_COLUMNS:
            raise parse_error(path, int(line_nos[0]), f"header must be {','.join(CSV_COLUMNS)}")
        lines, line_nos = lines[1:], line_nos[1:]
    return lines, line_nos


def _ids(fields: list[str], lookup: Mapping[str, int]) -> np.ndarray:
    """Each field's id in ``lookup`` (-1 where unknown), forgiving spaces and quotes around a name."""
    ids = np.fromiter(map(lookup.get, fields, itertools.repeat(-1)), dtype=np.int64, count=len(fields))
    for i in np.flatnonzero(ids < 0):
        ids[i] = lookup.get(fields[i].strip().strip('"'), -1)
    return ids


def read_frame_detections_csv(
    path: str | os.PathLike, annotations: TubeAnnotations, skip_bad: bool = False
) -> dict[str, np.ndarray]:
    """Per-frame detections from a CSV file (module docstring), by video: (M, 7) float64 rows ``frame, label,
    score, x1, y1, x2, y2``, in the file's order within a video. Only videos that have rows are returned."""
    path = Path(path)
    rows = _Rows(path, skip_bad)
    names = list(annotations.videos)
    with _no_gc():
        lines, line_nos = _data_lines(path, read_utf8(path))
        heads = [line.split(",", 3) for line in lines]
        commas = np.fromiter(map(str.count, lines, itertools.repeat(",")), dtype=np.int64, count=len(lines))
        ok = commas == len(CSV_COLUMNS) - 1
        for i in np.flatnonzero(~ok):
            rows.bad(str(line_nos[i]), f"{commas[i] + 1} fields, expected {len(CSV_COLUMNS)} ({','.join(CSV_COLUMNS)})")
        video_ids = _ids([h[0] for h in heads], {name: i for i, name in enumerate(names)})
        labels = _ids([h[2] if len(h) > 2 else "" for h in heads], _label_lookup(annotations.classes))
        del heads
    for i in np.flatnonzero(ok & (video_ids < 0)):
        rows.bad(str(line_nos[i]), f"unknown video {lines[i].split(',', 1)[0].strip()[:80]!r} (not in "
                 f"{annotations.source or 'the annotations'})")
    ok &= video_ids >= 0
    for i in np.flatnonzero(ok & (labels < 0)):
        rows.bad(str(line_nos[i]), f"unknown class {lines[i].split(',')[2].strip()[:40]!r} (a class name or an "
                 f"index 0..{len(annotations.classes) - 1})")
    ok &= labels >= 0
    good = [line for line, k in zip(lines, ok) if k] if not ok.all() else lines
    try:
        values = np.loadtxt(good, delimiter=",", usecols=(1, 3, 4, 5, 6, 7), dtype=np.float64, comments=None,
                            ndmin=2) if good else np.zeros((0, 6))
    except ValueError:
        values, parsed = _numbers_slowly(good, rows, line_nos[ok])
        keep = np.flatnonzero(ok)
        ok[keep[~parsed]] = False
        values = values[parsed]
    return _check_rows(rows, names, annotations, values, video_ids[ok], labels[ok], line_nos[ok])


def _check_rows(rows: _Rows, names: list[str], annotations: TubeAnnotations, values: np.ndarray,
                video_ids: np.ndarray, labels: np.ndarray, line_nos: np.ndarray) -> dict[str, np.ndarray]:
    """Frames inside their video, finite numbers, ordered corners; then the rows grouped by video."""
    frame, boxes = values[:, 0], values[:, 2:6]
    nframes = np.array([annotations.videos[n].num_frames for n in names], dtype=np.int64)[video_ids]
    checks = (
        (~np.isfinite(values).all(axis=1), "not a finite number"),
        ((frame != np.round(frame)) | (frame < 1) | (frame > nframes), "frame {frame:g} outside the video's frames "
         "1..{n}"),
        ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]), "box has x2 < x1 or y2 < y1"),
    )
    ok = np.ones(len(values), dtype=bool)
    for bad, message in checks:
        for i in np.flatnonzero(ok & bad):
            rows.bad(str(line_nos[i]), message.format(frame=frame[i], n=nframes[i]))
        ok &= ~bad
    rows.warn()
    return _group(values, labels, video_ids, np.flatnonzero(ok) if not ok.all() else None, names)


def _group(values: np.ndarray, labels: np.ndarray, video_ids: np.ndarray, keep: np.ndarray | None,
           names: list[str]) -> dict[str, np.ndarray]:
    """Rows ``frame, label, score, box`` (``values`` holds all but the label) of the ``keep`` rows (None: all),
    split by video, in file order within a video (one gather, one copy: millions of rows)."""
    ids = video_ids if keep is None else video_ids[keep]
    order = np.argsort(ids, kind="stable")
    if keep is not None:
        order = keep[order]
    ids = video_ids[order]
    table = np.empty((len(order), 7))
    table[:, 0] = values[order, 0]
    table[:, 1] = labels[order]
    table[:, 2:] = values[order, 1:]
    cuts = np.flatnonzero(np.diff(ids)) + 1
    starts = np.concatenate([[0], cuts]).astype(np.int64) if len(ids) else np.zeros(0, dtype=np.int64)
    return {names[ids[s]]: g for s, g in zip(starts, np.split(table, cuts))} if len(ids) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _json_tube(entry: Any, video: str, classes: dict[str, int], num_frames: int) -> Tube | str:
    """One tube of a JSON tubes file, or what is wrong with it."""
    if not isinstance(entry, dict) or not {"label", "score", "boxes"} <= set(entry):
        return 'not an object with "label", "score" and "boxes"'
    label = classes.get(str(entry["label"]).strip()) if not isinstance(entry["label"], (bool, float)) else None
    if label is None:
        return f"unknown class {entry['label']!r} (a class name or an index 0..{len(set(classes.values())) - 1})"
    score = _number(entry["score"])
    if score is None:
        return f"score {entry['score']!r} is not a finite number"
    try:
        boxes = np.asarray(entry["boxes"], dtype=np.float64)
    except (TypeError, ValueError):
        return "boxes must be a list of [frame, x1, y1, x2, y2]"
    if boxes.ndim != 2 or boxes.shape[1] != 5 or not len(boxes):
        return f"boxes must be a non-empty list of [frame, x1, y1, x2, y2], not shape {list(boxes.shape)}"
    if not np.isfinite(boxes).all():
        return "boxes hold a value that is not a finite number"
    frames = boxes[:, 0]
    if (frames != np.round(frames)).any() or frames.min() < 1 or frames.max() > num_frames:
        return f"frames must be whole numbers 1..{num_frames} (the video's frames)"
    if (np.diff(frames) <= 0).any():
        return "frames must increase strictly along the tube"
    if ((boxes[:, 3] < boxes[:, 1]) | (boxes[:, 4] < boxes[:, 2])).any():
        return "a box has x2 < x1 or y2 < y1"
    return Tube(label, boxes, score)


def read_tubes_json(
    path: str | os.PathLike, annotations: TubeAnnotations, skip_bad: bool = False
) -> dict[str, list[Tube]]:
    """Tubes from a JSON file (module docstring), by video; a bad entry names ``file: videos[V][k]``."""
    path = Path(path)
    try:
        data = json.loads(read_utf8(path))
    except json.JSONDecodeError as e:
        raise parse_error(path, e.lineno, f"not a tubes file (corrupt JSON: {e.msg})") from None
    if not isinstance(data, dict):
        raise parse_error(path, 1, "not a tubes file: expected an object {video: [tube, ...]}")
    rows = _Rows(path, skip_bad)
    classes = _label_lookup(annotations.classes)
    out: dict[str, list[Tube]] = {}
    for video, entries in data.items():
        info = annotations.videos.get(video)
        if info is None:
            rows.bad(f" videos[{video[:80]!r}]", f"unknown video (not in {annotations.source or 'the annotations'})")
            continue
        if not isinstance(entries, list):
            rows.bad(f" videos[{video!r}]", "expected a list of tubes")
            continue
        tubes = out.setdefault(video, [])
        for k, entry in enumerate(entries):
            tube = _json_tube(entry, video, classes, info.num_frames)
            if isinstance(tube, str):
                rows.bad(f" videos[{video!r}][{k}]", tube)
            else:
                tubes.append(tube)
    rows.warn()
    return out


def read_detections(
    path: str | os.PathLike, annotations: TubeAnnotations, skip_bad: bool = False
) -> tuple[str, dict[str, Any]]:
    """``("frames", detections)`` from a ``.csv`` file or ``("tubes", tubes)`` from a ``.json`` file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "frames", read_frame_detections_csv(path, annotations, skip_bad)
    if suffix == ".json":
        return "tubes", read_tubes_json(path, annotations, skip_bad)
    raise DatasetError(f"{path}: detections must be a .csv file (per-frame detections) or a .json file (tubes)")


def rows_text(table: np.ndarray, classes: Sequence[str] | None, prefix: str = "") -> list[str]:
    """Rows ``frame, label, score, x1, y1, x2, y2`` as CSV text (``prefix`` first: the video)."""
    label = (lambda v: classes[int(v)]) if classes is not None else (lambda v: str(int(v)))
    return [f"{prefix}{int(r[0])},{label(r[1])},{r[2]:.6g},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.2f}"
            for r in table]


def frame_detections_csv(detections: Mapping[str, np.ndarray], classes: Sequence[str] | None = None) -> bytes:
    """A detections file (with header) for ``detections`` by video; labels as class names when ``classes`` is
    given, else as indices. Scores to 6 significant digits, boxes to 0.01 pixel."""
    lines = [",".join(CSV_COLUMNS)]
    for video, table in detections.items():
        lines += rows_text(np.asarray(table, dtype=np.float64).reshape(-1, 7), classes, f"{video},")
    return ("\n".join(lines) + "\n").encode()


def write_frame_detections_csv(path: str | os.PathLike, detections: Mapping[str, np.ndarray],
                               classes: Sequence[str] | None = None) -> Path:
    """Write ``frame_detections_csv`` atomically."""
    atomic_write_bytes(Path(path), frame_detections_csv(detections, classes))
    return Path(path)


def write_tubes_json(path: str | os.PathLike, tubes: Mapping[str, Sequence[Tube]],
                     classes: Sequence[str] | None = None) -> Path:
    """A tubes file (module docstring) for ``tubes`` by video, written atomically."""
    data = {video: [{"label": classes[t.label] if classes is not None else int(t.label), "score": float(t.score),
                     "boxes": [[int(b[0]), *(round(float(v), 2) for v in b[1:])] for b in t.boxes]}
                    for t in video_tubes] for video, video_tubes in tubes.items()}
    atomic_write_bytes(Path(path), json.dumps(data).encode())
    return Path(path)



def result_bytes(table: np.ndarray) -> bytes:
    """One video's result file: header ``frame,label,score,x1,y1,x2,y2`` and a row per detection."""
    return ("\n".join([",".join(RESULT_COLUMNS), *rows_text(table, None)]) + "\n").encode()


def read_result(path: Path, num_frames: int, num_classes: int) -> np.ndarray | None:
    """A video's result file as (M, 7) rows, or None if it is missing, damaged or not of this video (it is run
    again)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or lines[0] != ",".join(RESULT_COLUMNS):
            return None
        table = np.loadtxt(lines[1:], delimiter=",", dtype=np.float64, ndmin=2) if lines[1:] else np.zeros((0, 7))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if table.shape[1] != 7 or not np.isfinite(table).all():
        return None
    if len(table) and (table[:, 0].min() < 1 or table[:, 0].max() > num_frames or table[:, 1].max() >= num_classes):
        return None
    return table
