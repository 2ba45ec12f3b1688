"""Action tubes: the in-memory annotation of the spatio-temporal action detection datasets (UCF101-24, J-HMDB-21,
UCF-Sports) and of detectors' outputs, with the one statement of their conventions, and the readers and writers of
the annotation files (ROAD's ``pyannot.pkl`` with its split lists, ACT's ``*-GT.pkl``, the official J-HMDB splits).

Conventions (every reader converts to these, every writer converts from them):

- **Frames** are numbered as the image files are: 1-based (``rgb-images/<Class>/<video>/00001.jpg`` and ACT's
  ``Frames/<video>/00001.png`` are frame 1). ACT's ``gttubes`` already use this numbering; ROAD's ``pyannot.pkl``
  stores a tube's first frame ``sf`` 0-based and its end ``ef`` exclusive, so its frames are ``sf + 1 .. ef``:
  ROAD's ``data/ucf24.py`` (``make_lists``) puts box ``i`` of a tube on frame index ``sf + i`` and reads it from
  the file ``{sf + i + 1:05d}.jpg``.
- **Boxes** are ``x1, y1, x2, y2`` in pixels of the original frame, float64, as ACT stores them. ROAD's
  ``pyannot.pkl`` stores ``x, y, w, h`` (uint8 or uint16: cast before any arithmetic) and its loader takes
  ``x2 = x + w``, ``y2 = y + h`` (ROAD and Two-in-One ``data/ucf24.py``: ``box[2] += box[0]`` on a float32 copy;
  their ``AnnotationTransform`` then only clips to the frame, its ``int(x) - 1`` is overwritten); that is what the
  readers here do. Whether areas count an extra pixel (``+1``) is a scoring convention
  (``zoo.metrics.action_detection``), not a property of the boxes.
- **Labels** are 0-based indices into ``TubeAnnotations.classes``.
- **Videos** are named as the annotation files name them: ``<Class>/<video>`` (``Basketball/v_Basketball_g01_c01``,
  ``brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0``, ``Diving/001``), without an extension.
- **Splits** are numbered from 1 (J-HMDB's 1, 2, 3; ACT's pickles index them from 0).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.errors import DatasetError, parse_error
from zoo.hub import atomic_write_bytes

log = logging.getLogger(__name__)

FRAME_BASE = 1  # the number of a video's first frame


@dataclass
class Tube:
    """One actor's action tube (ground truth or detected): ``boxes`` (N, 5) float64 rows ``frame, x1, y1, x2, y2``
    in increasing frame order; ``score`` is 1.0 for ground truth."""

    label: int
    boxes: np.ndarray
    score: float = 1.0

    @property
    def frames(self) -> np.ndarray:
        return self.boxes[:, 0].astype(np.int64)

    @property
    def start(self) -> int:
        return int(self.boxes[0, 0])

    @property
    def end(self) -> int:
        """The last frame (inclusive)."""
        return int(self.boxes[-1, 0])


@dataclass
class VideoTubes:
    """One video's annotation: its frame count, resolution ``(height, width)``, video-level label and tubes."""

    name: str
    num_frames: int
    resolution: tuple[int, int]
    label: int
    tubes: list[Tube] = field(default_factory=list)


@dataclass
class TubeAnnotations:
    """A dataset's annotation: class names, videos, and per split number its ``(train, test)`` video lists."""

    dataset: str
    classes: list[str]
    videos: dict[str, VideoTubes]
    splits: dict[int, tuple[list[str], list[str]]]
    source: Path | None = None
    skipped: list[str] = field(default_factory=list)  # one line per item a reader skipped (``on_missing="skip"``)

    def test_videos(self, split: int = 1) -> list[str]:
        return self.splits[split][1]

    def train_videos(self, split: int = 1) -> list[str]:
        return self.splits[split][0]


# ROAD ``data/ucf24.py`` CLASSES: the index order of the labels in pyannot.pkl
UCF24_CLASSES: list[str] = [
    "Basketball", "BasketballDunk", "Biking", "CliffDiving", "CricketBowling", "Diving", "Fencing",
    "FloorGymnastics", "GolfSwing", "HorseRiding", "IceDancing", "LongJump", "PoleVault", "RopeClimbing",
    "SalsaSpin", "SkateBoarding", "Skiing", "Skijet", "SoccerJuggling", "Surfing", "TennisSwing",
    "TrampolineJumping", "VolleyballSpiking", "WalkingWithDog",
]
# ACT's ``labels`` of UCFSports-GT.pkl (alphabetical)
UCFSPORTS_CLASSES: list[str] = [
    "Diving", "Golf", "Kicking", "Lifting", "Riding", "Run", "SkateBoarding", "Swing1", "Swing2", "Walk",
]
# ACT's ``labels`` of JHMDB-GT.pkl (alphabetical, the names of the official split files)
JHMDB_CLASSES: list[str] = [
    "brush_hair", "catch", "clap", "climb_stairs", "golf", "jump", "kick_ball", "pick", "pour", "pullup", "push",
    "run", "shoot_ball", "shoot_bow", "shoot_gun", "sit", "stand", "swing_baseball", "throw", "walk", "wave",
]
UCF101_RESOLUTION = (240, 320)  # (height, width) of every UCF101 video; pyannot.pkl does not store it
JHMDB_RESOLUTION = (240, 320)


def _check_policy(name: str, value: str) -> None:
    if value not in ("raise", "skip"):
        raise ValueError(f"{name} must be 'raise' or 'skip', not {value!r}")


def _load_pickle(path: Path) -> object:
    """A pickle written by Python 2 or 3 (``encoding="latin1"`` reads Python 2's str and numpy arrays), read with
    ``NumpyOnlyUnpickler``: plain containers and numpy arrays only, so a file can never run code on load."""
    from zoo.convert import NumpyOnlyUnpickler

    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        with open(path, "rb") as f:
            return NumpyOnlyUnpickler(f, path, encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DatasetError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e


def _dump_pickle(obj: object, path: str | Path) -> None:
    """Protocol 2, which Python 2 (ACT's caffe scripts) and 3 both read; written atomically."""
    atomic_write_bytes(Path(path), pickle.dumps(obj, protocol=2))


# ----------------------------------------------------------------------------------------------------- split lists
def split_list_names(path: str | Path) -> list[tuple[int, str]]:
    """``(line number, video name)`` of a split list, one name a line (ROAD's ``trainlist01.txt``:
    ``Basketball/v_Basketball_g01_c01``); blank lines are ignored, anything after a space and a trailing ``.avi``
    are dropped."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: split list not found")
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        name = line.strip().split(" ")[0] if line.strip() else ""
        if name:
            out.append((line_no, name[:-4] if name.endswith(".avi") else name))
    return out


def read_split_list(path: str | Path) -> list[str]:
    """The video names of a split list (``split_list_names``)."""
    return [name for _, name in split_list_names(path)]


def write_split_list(videos: Iterable[str], path: str | Path) -> None:
    """Write a split list as ROAD's ``trainlist01.txt`` / ``testlist01.txt``: one video name a line (atomically)."""
    atomic_write_bytes(Path(path), "".join(f"{v}\n" for v in videos).encode("utf-8"))


def _resolve_list(videos: dict, path: Path, on_missing: str, skipped: list[str]) -> list[str]:
    """The names in split list ``path`` that the annotation has; a missing one is an error or skipped and counted."""
    found = []
    for line_no, name in split_list_names(path):
        if name in videos:
            found.append(name)
            continue
        err = parse_error(path, line_no, f"video {name!r} is not in the annotation file")
        if on_missing == "raise":
            raise err
        skipped.append(str(err))
        log.warning("%s (skipped)", err)
    return found


# ---------------------------------------------------------------------------------------------------- pyannot.pkl
def _pyannot_tube(path: Path, name: str, numf: int, video_label: int, t: dict, on_bad_tube: str,
                  skipped: list[str]) -> Tube | None:
    """One ``annotations`` entry as a Tube: box ``i`` on frame ``sf + 1 + i``, ``x2 = x + w`` computed in float64."""
    try:
        sf, ef, label = int(t["sf"]), int(t["ef"]), int(t.get("label", video_label))
        boxes = np.asarray(t["boxes"]).astype(np.float64).reshape(-1, 4)  # cast first: uint8 x + w wraps round
    except (KeyError, TypeError, ValueError) as e:
        problem = f"malformed tube ({type(e).__name__}: {e})"
    else:
        if ef - sf != len(boxes):
            problem = f"tube frames sf={sf}..ef={ef} ({ef - sf} frames) disagree with its {len(boxes)} boxes"
        elif sf < 0 or ef > numf:
            problem = f"tube frames sf={sf}..ef={ef} lie outside the video's {numf} frames"
        elif len(boxes) == 0:
            problem = "empty tube"
        else:
            frames = np.arange(sf + FRAME_BASE, ef + FRAME_BASE, dtype=np.float64)[:, None]
            xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
            return Tube(label, np.concatenate([frames, xyxy], axis=1))
    message = f"{path}: video {name!r}: {problem}"
    if on_bad_tube == "raise":
        raise DatasetError(message)
    skipped.append(message)
    log.warning("%s (skipped)", message)
    return None


def read_pyannot(
    path: str | Path,
    trainlist: str | Path | None = None,
    testlist: str | Path | None = None,
    classes: Sequence[str] | None = None,
    on_missing: str = "raise",
    on_bad_tube: str = "raise",
    resolution: tuple[int, int] = UCF101_RESOLUTION,
    dataset: str = "ucf101-24",
) -> TubeAnnotations:
    """Read ROAD's ``pyannot.pkl`` (Singh et al. ICCV 2017, ``data/ucf24.py``; the corrected UCF101-24
    annotations, Python-2 pickle) as split 1 of a TubeAnnotations.

    ``trainlist`` / ``testlist``: ROAD's ``trainlist01.txt`` / ``testlist01.txt``; None looks for them beside the
    pickle. As in ROAD's ``make_lists``, a video not in the train list is a test video: with only one list the
    other split is the rest of the annotated videos; with neither, ``splits`` is empty. A listed video missing from
    the pickle is a DatasetError naming the list and line (``on_missing="skip"``: left out, and recorded in
    ``skipped``); so is a tube whose ``boxes`` and ``sf``/``ef`` disagree (``on_bad_tube``). ``resolution``
    ``(h, w)`` is UCF101's 320x240 for every video (the pickle does not store it). ``classes`` None: ROAD's 24
    (``UCF24_CLASSES``), unless a ``classes.txt`` (one name a line, as the synthetic writer leaves) lies beside the
    pickle.
    """
    _check_policy("on_missing", on_missing)
    _check_policy("on_bad_tube", on_bad_tube)
    path = Path(path)
    if classes is None:
        names = path.parent / "classes.txt"
        classes = [c.strip() for c in names.read_text().splitlines() if c.strip()] if names.is_file() else UCF24_CLASSES
    data = _load_pickle(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a dict video -> annotation, got {type(data).__name__}")
    skipped: list[str] = []
    videos: dict[str, VideoTubes] = {}
    for key in sorted(data):
        name, entry = str(key), data[key]
        try:
            numf, label = int(entry["numf"]), int(entry["label"])  # numf may be numpy uint8/uint16
            raw_tubes = list(entry["annotations"])
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"{path}: video {name!r}: malformed entry ({type(e).__name__}: {e})") from e
        tubes = [_pyannot_tube(path, name, numf, label, t, on_bad_tube, skipped) for t in raw_tubes]
        videos[name] = VideoTubes(name, numf, tuple(resolution), label, [t for t in tubes if t is not None])
    train_path = Path(trainlist) if trainlist is not None else path.parent / "trainlist01.txt"
    test_path = Path(testlist) if testlist is not None else path.parent / "testlist01.txt"
    for given, p in ((trainlist, train_path), (testlist, test_path)):
        if given is not None and not p.is_file():
            raise DatasetError(f"{p}: split list not found")
    train = _resolve_list(videos, train_path, on_missing, skipped) if train_path.is_file() else None
    test = _resolve_list(videos, test_path, on_missing, skipped) if test_path.is_file() else None
    splits: dict[int, tuple[list[str], list[str]]] = {}
    if train is not None or test is not None:
        if train is None:
            train = [v for v in videos if v not in set(test)]
        if test is None:
            test = [v for v in videos if v not in set(train)]
        splits[1] = (train, test)
    return TubeAnnotations(dataset, list(classes), videos, splits, path, skipped)


def _xyxy_to_xywh(video: str, tube: Tube) -> tuple[int, int, np.ndarray]:
    """A tube as pyannot's ``sf``, ``ef``, uint16 ``x, y, w, h`` boxes (rounded); its frames must be consecutive."""
    frames = tube.frames
    if len(frames) == 0 or np.any(np.diff(frames) != 1):
        raise ValueError(f"video {video!r}: pyannot.pkl needs tubes on consecutive frames, got {frames.tolist()}")
    b = tube.boxes[:, 1:5]
    xywh = np.rint(np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1))
    if xywh.min() < 0 or xywh.max() > np.iinfo(np.uint16).max:
        raise ValueError(f"video {video!r}: box x, y, w, h outside 0..65535 cannot be stored in pyannot.pkl")
    return int(frames[0]) - FRAME_BASE, int(frames[-1]) - FRAME_BASE + 1, xywh.astype(np.uint16)


def write_pyannot(ann: TubeAnnotations, path: str | Path) -> None:
    """Write ``ann`` as ROAD's ``pyannot.pkl`` (video -> {``label``, ``numf``, ``annotations``: [{``label``, ``sf``,
    ``ef``, ``boxes``}]}, ``sf`` 0-based, ``ef`` exclusive, boxes uint16 ``x, y, w, h`` rounded to whole pixels),
    atomically. Splits are not in the pickle: write them with ``write_split_list``."""
    out = {}
    for name, v in ann.videos.items():
        annotations = []
        for t in v.tubes:
            sf, ef, boxes = _xyxy_to_xywh(name, t)
            annotations.append({"label": int(t.label), "sf": sf, "ef": ef, "boxes": boxes})
        out[name] = {"label": int(v.label), "numf": int(v.num_frames), "annotations": annotations}
    _dump_pickle(out, path)


# ------------------------------------------------------------------------------------------------------ ACT *-GT.pkl
_ACT_DATASETS = {"jhmdb": "jhmdb", "ucfsports": "ucfsports", "ucf101v2": "ucf101-24", "ucf101": "ucf101-24"}


def _act_dataset_name(path: Path) -> str:
    stem = path.stem.lower().replace("-gt", "").replace("_", "").replace("-", "")
    return _ACT_DATASETS.get(stem, stem)


def _act_tubes(path: Path, name: str, per_label: object, nframes: int) -> list[Tube]:
    if not isinstance(per_label, dict):
        raise DatasetError(f"{path}: video {name!r}: gttubes entry is not a dict label -> tubes")
    tubes = []
    for label in sorted(per_label):
        for raw in per_label[label]:
            boxes = np.asarray(raw).astype(np.float64)
            if boxes.ndim != 2 or boxes.shape[1] != 5 or len(boxes) == 0:
                raise DatasetError(f"{path}: video {name!r}: a tube of shape {boxes.shape}, expected (N, 5)")
            frames = boxes[:, 0]
            if frames.min() < FRAME_BASE or frames.max() > nframes or np.any(np.diff(frames) <= 0):
                raise DatasetError(f"{path}: video {name!r}: tube frames {int(frames.min())}..{int(frames.max())} "
                                   f"are not increasing within the video's frames 1..{nframes}")
            tubes.append(Tube(int(label), boxes))
    return tubes


def _act_video_label(per_label: dict) -> int:
    """The video's label: the class with the most tubes (ACT's videos have one)."""
    return int(max(sorted(per_label), key=lambda k: len(per_label[k]))) if per_label else -1


def read_act_gt(path: str | Path, dataset: str | None = None, on_missing: str = "raise") -> TubeAnnotations:
    """Read ACT's ground-truth cache (Kalogeiton et al. ICCV 2017; ``JHMDB-GT.pkl``, ``UCFSports-GT.pkl``, as read by
    ACT ``ACT_datalayer.py`` and MOC ``src/datasets/dataset/base_dataset.py``): ``labels``, ``train_videos`` /
    ``test_videos`` (one list per split, index 0 = split 1), ``nframes`` {video: n}, ``resolution`` {video:
    (h, w)}, ``gttubes`` {video: {label index: [N x 5 (frame 1-based, x1, y1, x2, y2)]}}.

    ``dataset`` defaults to the file's name (``jhmdb``, ``ucfsports``). A split video missing from ``gttubes`` /
    ``nframes`` is a DatasetError naming the file (``on_missing="skip"``: left out and recorded in ``skipped``).
    """
    _check_policy("on_missing", on_missing)
    path = Path(path)
    data = _load_pickle(path)
    keys = ("labels", "train_videos", "test_videos", "nframes", "resolution", "gttubes")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        have = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"{path}: an ACT GT pickle needs keys {list(keys)}, has {have}")
    classes = [str(c) for c in data["labels"]]
    videos: dict[str, VideoTubes] = {}
    for key in sorted(data["nframes"]):
        name = str(key)
        res = data["resolution"].get(key)
        if res is None:
            raise DatasetError(f"{path}: video {name!r} has no resolution")
        try:
            per_label = data["gttubes"].get(key, {})
            numf = int(data["nframes"][key])
            videos[name] = VideoTubes(name, numf, (int(res[0]), int(res[1])), _act_video_label(per_label),
                                      _act_tubes(path, name, per_label, numf))
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as e:
            raise DatasetError(f"{path}: video {name!r}: malformed entry ({type(e).__name__}: {e})") from e
    skipped: list[str] = []
    splits: dict[int, tuple[list[str], list[str]]] = {}
    for i, (train, test) in enumerate(zip(data["train_videos"], data["test_videos"])):
        lists = []
        for which, names in (("train_videos", train), ("test_videos", test)):
            kept = []
            for j, v in enumerate(names):
                if str(v) in videos:
                    kept.append(str(v))
                    continue
                message = f"{path}: {which}[{i}][{j}]: video {str(v)!r} is not in nframes/gttubes"
                if on_missing == "raise":
                    raise DatasetError(message)
                skipped.append(message)
                log.warning("%s (skipped)", message)
            lists.append(kept)
        splits[i + 1] = (lists[0], lists[1])
    return TubeAnnotations(dataset or _act_dataset_name(path), classes, videos, splits, path, skipped)


def write_act_gt(ann: TubeAnnotations, path: str | Path, box_dtype: type = np.float64) -> None:
    """Write ``ann`` as an ACT ground-truth cache (the format ``read_act_gt`` reads), atomically. Splits must be
    numbered 1..n (written as the lists' indices 0..n-1); tubes are ``box_dtype`` arrays (float64 by default, so
    that a round trip is exact)."""
    numbers = sorted(ann.splits)
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"ACT pickles number splits 1..n, got {numbers}")
    gttubes = {}
    for name, v in ann.videos.items():
        per_label: dict[int, list[np.ndarray]] = {}
        for t in v.tubes:
            per_label.setdefault(int(t.label), []).append(np.asarray(t.boxes, dtype=box_dtype))
        if not per_label and v.label >= 0:  # a video without tubes keeps its label as an empty list
            per_label[int(v.label)] = []
        gttubes[name] = per_label
    out = {
        "labels": list(ann.classes),
        "train_videos": [list(ann.splits[s][0]) for s in numbers],
        "test_videos": [list(ann.splits[s][1]) for s in numbers],
        "nframes": {name: int(v.num_frames) for name, v in ann.videos.items()},
        "resolution": {name: (int(v.resolution[0]), int(v.resolution[1])) for name, v in ann.videos.items()},
        "gttubes": gttubes,
    }
    _dump_pickle(out, path)


# ------------------------------------------------------------------------------------------- official J-HMDB splits
def read_jhmdb_splits(
    split_dir: str | Path, splits: Sequence[int] = (1, 2, 3)
) -> tuple[list[str], dict[int, tuple[list[str], list[str]]], dict[str, int]]:
    """The official J-HMDB splits (Jhuang et al. ICCV 2013): files ``<action>_test_split<k>.txt`` with lines
    ``<video>.avi 1|2`` (1 = train, 2 = test). Returns the classes (alphabetical, ACT's ``labels``), per split number
    ``(train, test)`` and each video's label index; videos are named as ACT's JHMDB-GT.pkl names them,
    ``<action>/<video>`` without ``.avi``."""
    split_dir = Path(split_dir)
    files = sorted(split_dir.glob("*_test_split*.txt"))
    if not files:
        raise DatasetError(f"{split_dir}: no J-HMDB split files <action>_test_split<k>.txt")
    classes = sorted({f.name.rsplit("_test_split", 1)[0] for f in files})
    labels: dict[str, int] = {}
    out: dict[int, tuple[list[str], list[str]]] = {}
    for k in splits:
        train: list[str] = []
        test: list[str] = []
        for c, action in enumerate(classes):
            f = split_dir / f"{action}_test_split{k}.txt"
            if not f.is_file():
                raise DatasetError(f"{f}: split file missing (the other splits have class {action!r})")
            for line_no, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise parse_error(f, line_no, f"expected '<video>.avi 1|2', got {line.strip()!r}")
                video = f"{action}/{parts[0][:-4] if parts[0].endswith('.avi') else parts[0]}"
                labels[video] = c
                if parts[1] == "1":
                    train.append(video)
                elif parts[1] == "2":
                    test.append(video)
        out[int(k)] = (train, test)
    return classes, out, labels
