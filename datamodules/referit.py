"""ReferItGame (Kazemzadeh et al., EMNLP 2014) as the language tracker's lingual network trains on it: the official
``lang_seg_model`` / ``lang_seg_low_res_model`` read the batches that text_objseg's
``exp-referit/build_training_batches_seg.py`` makes (Hu et al., ECCV 2016), one sample per (region, description):
the image and the region's mask placed by ``resize_and_pad`` in the 512 x 512 input, the description preprocessed
by ``util/text_processing.preprocess_sentence`` (tokenised, lower-cased, the first 20 tokens left-padded with
``<pad>``) with the official 8,803-word vocabulary.

Layout (the official ``referit/`` folder; ``annotations`` may point elsewhere)::

    <root>/referit-dataset/images/<image>.jpg     the ReferItGame images (or <root>/images)
    <root>/referit-dataset/mask/<region>.mat      one per region, <image>_<k>: ``segimg_t``, the region where 0
                                                  (util/io.load_referit_gt_mask) (or <root>/mask)
    <root>/data/referit_query_trainval.json       {region: [description, ...]}     (or directly under <root>)
    <root>/data/referit_query_test.json
    <root>/data/referit_bbox.json                 {region: [x1, y1, x2, y2]}, 0-based, inclusive
    <root>/data/referit_imsize.json               {<image>.jpg: [width, height]}
    <root>/data/referit_trainval_imlist.txt       image ids, one a line
    <root>/data/referit_test_imlist.txt
    <root>/data/vocabulary_referit.txt            <pad> <go> <eos> <unk> and 8,799 words, one a line

The real files hold 49,515 trainval regions with 59,976 descriptions (9,995 images) and 49,730 test regions with
60,105 descriptions. Masks may also be image files (a grey image, the region > 127), as the official demo's
``38100_mask.jpg``; ``read_box_file`` reads the demo's box files (``38100_box.txt``, ``dt_box``'s output).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from datamodules.base import ZooDataModule
from datamodules.text import read_lines, read_text
from datamodules.video import read_rgb
from zoo.errors import DatasetError, parse_error
from zoo.nn.text import Vocabulary

SPLITS = ("trainval", "test")
IMAGE_DIRS = ("referit-dataset/images", "images")
MASK_DIRS = ("referit-dataset/mask", "mask")
ANNOTATION_DIRS = ("data", ".")
QUERY_FILE = "referit_query_{}.json"
IMLIST_FILE = "referit_{}_imlist.txt"
BBOX_FILE = "referit_bbox.json"
IMSIZE_FILE = "referit_imsize.json"
VOCAB_FILE = "vocabulary_referit.txt"
MASK_KEY = "segimg_t"


def read_json(path: str | os.PathLike) -> Any:
    """A UTF-8 JSON file; a missing file or bad JSON is a DatasetError at ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: ReferIt annotation file not found")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise parse_error(path, e.lineno, f"not JSON ({e.msg}, column {e.colno})") from None


def read_queries(path: str | os.PathLike) -> dict[str, list[str]]:
    """``referit_query_<split>.json``: ``{region: [description, ...]}`` in the file's order (``<image>_<k>``)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected {{region: [descriptions]}}, not a {type(data).__name__}")
    for region, descriptions in data.items():
        if "_" not in region:
            raise DatasetError(f"{path}: region {region!r} is not <image>_<k>")
        if not isinstance(descriptions, list) or not descriptions or not all(isinstance(d, str) for d in descriptions):
            raise DatasetError(f"{path}: region {region!r}: expected a non-empty list of descriptions")
    return data


def read_boxes(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``referit_bbox.json``: ``{region: [x1, y1, x2, y2]}`` (0-based pixels, inclusive) as float arrays."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected {{region: [x1, y1, x2, y2]}}, not a {type(data).__name__}")
    boxes = {}
    for region, box in data.items():
        if (not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box)
                or box[2] < box[0] or box[3] < box[1]):
            raise DatasetError(f"{path}: region {region!r}: expected [x1, y1, x2, y2] with x1 <= x2, y1 <= y2, "
                               f"not {box!r}")
        boxes[region] = np.asarray(box, dtype=np.float64)
    return boxes


def read_sizes(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """``referit_imsize.json``: ``{<image>.jpg: (width, height)}``."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected {{image: [width, height]}}, not a {type(data).__name__}")
    sizes = {}
    for name, size in data.items():
        if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise DatasetError(f"{path}: image {name!r}: expected [width, height], not {size!r}")
        sizes[name] = (size[0], size[1])
    return sizes


def read_image_list(path: str | os.PathLike) -> list[str]:
    """``referit_<split>_imlist.txt``: image ids, one a line; a missing file or a repeated id names the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: ReferIt image list not found")
    ids, seen = [], {}
    for n, line in enumerate(read_lines(path), 1):
        name = line.strip()
        if not name:
            continue
        if name in seen:
            raise parse_error(path, n, f"image {name} repeats line {seen[name]}")
        seen[name] = n
        ids.append(name)
    if not ids:
        raise DatasetError(f"{path}: empty image list")
    return ids


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A region's mask as (H, W) bool: a ReferIt ``.mat`` (``segimg_t == 0``, util/io.load_referit_gt_mask), or an
    image file (grey, the region > 127, as the official demo's ``38100_mask.jpg``). A bad file names itself."""
    path = Path(path)
    if path.suffix.lower() != ".mat":
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DatasetError(f"{path}: cannot read mask image")
        return image > 127
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        data = scipy.io.loadmat(str(path))
    except FileNotFoundError:
        raise DatasetError(f"{path}: ReferIt mask not found") from None
    except (OSError, ValueError, NotImplementedError, MatReadError) as e:
        raise DatasetError(f"{path}: cannot read ReferIt mask ({str(e).splitlines()[0][:120]})") from None
    if MASK_KEY not in data or np.ndim(data[MASK_KEY]) != 2:
        raise DatasetError(f"{path}: no 2-D {MASK_KEY} in this ReferIt mask")
    return np.asarray(data[MASK_KEY]) == 0


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write an (H, W) bool mask as a ReferIt ``.mat``: ``segimg_t`` uint8, 0 on the region and 1 elsewhere."""
    import scipy.io

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {MASK_KEY: np.where(np.asarray(mask, bool), 0, 1).astype(np.uint8)},
                     do_compression=True)


def read_box_file(path: str | os.PathLike) -> np.ndarray:
    """A box file of the official demo (``bboxgenerator/dt_box``'s output, e.g. ``38100_box.txt``): ``x y w h``
    groups (1-based); the largest box as [x1, y1, x2, y2] (1-based, inclusive), as ``util/eval_tools.compute_bbox_max``
    takes it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: box file not found")
    items = " ".join(read_lines(path)).split()
    try:
        values = np.asarray([int(v) for v in items], dtype=np.int64)
    except ValueError:
        raise DatasetError(f"{path}: expected integers x y w h, found {' '.join(items)[:60]!r}") from None
    if not len(values) or len(values) % 4:
        raise DatasetError(f"{path}: expected groups of 4 integers x y w h, found {len(values)}")
    x, y, w, h = values.reshape(-1, 4).T
    boxes = np.stack([np.minimum(x, x + w - 1), np.minimum(y, y + h - 1), np.maximum(x, x + w - 1),
                      np.maximum(y, y + h - 1)], 1)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[int(np.argmax(areas))] if areas.max() > 0 else boxes[0]


def _find(root: Path, candidates: tuple[str, ...], name: str | None = None) -> Path:
    """The first of ``root/candidate[/name]`` that exists, else the first candidate (for the error message)."""
    paths = [root / c / name if name else root / c for c in candidates]
    return next((p for p in paths if p.exists()), paths[0])


class ReferItAnnotations:
    """The annotation files of a ReferIt folder (``annotations``: their folder, else ``data/`` or ``root``)."""

    def __init__(self, root: str | os.PathLike, annotations: str | os.PathLike | None = None) -> None:
        self.root = Path(root)
        if annotations is not None:
            self.folder = Path(annotations)
        else:
            self.folder = _find(self.root, ANNOTATION_DIRS, VOCAB_FILE).parent
        if not self.folder.is_dir():
            raise DatasetError(f"{self.folder}: ReferIt annotation folder not found")

    def path(self, name: str) -> Path:
        return self.folder / name

    def queries(self, split: str) -> dict[str, list[str]]:
        return read_queries(self.path(QUERY_FILE.format(_split(split))))

    def image_list(self, split: str) -> list[str]:
        return read_image_list(self.path(IMLIST_FILE.format(_split(split))))

    def boxes(self) -> dict[str, np.ndarray]:
        return read_boxes(self.path(BBOX_FILE))

    def sizes(self) -> dict[str, tuple[int, int]]:
        return read_sizes(self.path(IMSIZE_FILE))

    def vocabulary(self) -> Vocabulary:
        path = self.path(VOCAB_FILE)
        if not path.is_file():
            raise DatasetError(f"{path}: ReferIt vocabulary not found")
        return Vocabulary.from_file(path)


def _split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    return split


def region_image(region: str) -> str:
    """The image id of a region ``<image>_<k>`` (as the official code splits it)."""
    return region.split("_", 1)[0]


class ReferItRegions(torch.utils.data.Dataset):
    """One sample per (region, description) of a split, in the query file's order, as the official batches hold them:
    ``{"image": uint8 (3, S, S), "mask": float (S, S) (``target="mask"``: the region's mask placed like the image, 1
    where the bilinearly resized mask is > 0, the official ``label_fine``; ``target="box"``: its box), "box": x1 y1
    x2 y2 in input pixels, "sentence": str, "region": str}``. Frames are placed as ``zoo.lang_tracker.crops.fit_square``
    says (``keep_aspect``: the official ``resize_and_pad``, between zero padding).

    Every region's image must be in the split's image list and have a box; with ``target="mask"`` it needs its mask.
    A region whose image or mask file is absent is an error naming it unless ``allow_missing`` (then it is left out,
    counted in ``missing``). ``limit``: at most this many samples, evenly spaced (a validation subset)."""

    def __init__(self, root: str | os.PathLike, split: str = "trainval", annotations: str | os.PathLike | None = None,
                 input_size: int = 512, keep_aspect: bool = True, target: str = "mask", allow_missing: bool = False,
                 limit: int | None = None) -> None:
        if target not in ("mask", "box"):
            raise ValueError(f"target must be 'mask' or 'box', not {target!r}")
        self.input_size, self.keep_aspect, self.target = input_size, keep_aspect, target
        ann = ReferItAnnotations(root, annotations)
        self.image_dir, self.mask_dir = _find(ann.root, IMAGE_DIRS), _find(ann.root, MASK_DIRS)
        queries, boxes = ann.queries(split), ann.boxes()
        listed = set(ann.image_list(split))
        query_file = ann.path(QUERY_FILE.format(split))
        images = _listing(self.image_dir)
        masks = _listing(self.mask_dir) if target == "mask" else None
        self.boxes: dict[str, np.ndarray] = {}
        self.items: list[tuple[str, str]] = []
        self.missing: list[str] = []
        for region, descriptions in queries.items():
            image = region_image(region)
            if image not in listed:
                raise DatasetError(f"{query_file}: region {region}'s image {image} is not in "
                                   f"{ann.path(IMLIST_FILE.format(split))}")
            if region not in boxes:
                raise DatasetError(f"{ann.path(BBOX_FILE)}: no box for region {region} ({query_file})")
            absent = [p for p, names in ((self.image_dir / f"{image}.jpg", images),
                                         (self.mask_dir / f"{region}.mat", masks)) if names is not None
                      and p.name not in names]
            if absent:
                if not allow_missing:
                    raise DatasetError(f"{absent[0]}: not found (region {region} of {query_file}; "
                                       "allow_missing=True leaves such regions out)")
                self.missing.append(region)
                continue
            self.boxes[region] = boxes[region]
            self.items += [(region, d) for d in descriptions]
        if limit is not None and len(self.items) > limit:
            self.items = [self.items[i] for i in np.linspace(0, len(self.items) - 1, limit).round().astype(int)]
        if not self.items:
            raise DatasetError(f"{query_file}: no region of the {split} split has its files in {self.image_dir}")

    def __len__(self) -> int:
        return len(self.items)

    def sentences(self) -> list[str]:
        return [d for _, d in self.items]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from zoo.lang_tracker.crops import fit_square

        region, sentence = self.items[index]
        image = read_rgb(self.image_dir / f"{region_image(region)}.jpg")  # grey images: three equal channels
        s, (h, w) = self.input_size, image.shape[:2]
        sx, sy, px, py = fit_square(h, w, s, self.keep_aspect)
        nh, nw, top, left = round(h * sy), round(w * sx), int(py), int(px)
        square = np.zeros((s, s, 3), np.uint8)
        square[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x1, y1, x2, y2 = self.boxes[region]
        box = np.array([x1 * sx + px, y1 * sy + py, (x2 + 1) * sx + px, (y2 + 1) * sy + py], dtype=np.float32)
        item = {"image": torch.from_numpy(square).permute(2, 0, 1).contiguous(), "box": torch.from_numpy(box),
                "sentence": sentence, "region": region}
        if self.target == "mask":
            path = self.mask_dir / f"{region}.mat"
            mask = read_mask(path)
            if mask.shape != (h, w):
                raise DatasetError(f"{path}: mask is {mask.shape[1]} x {mask.shape[0]}, its image {w} x {h}")
            placed = np.zeros((s, s), np.float32)
            placed[top : top + nh, left : left + nw] = cv2.resize(mask.astype(np.float32), (nw, nh),
                                                                  interpolation=cv2.INTER_LINEAR) > 0
            item["mask"] = torch.from_numpy(placed)
        return item


def _listing(folder: Path) -> set[str]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: ReferIt folder not found")
    return set(os.listdir(folder))


class ReferItDataModule(ZooDataModule):
    """ReferIt for the lingual specification network, as the official code trains it: every (region, description)
    of ``trainval`` (shuffled; batches of 10 in ``configs/lingual_referit.yaml``), the official vocabulary
    (``vocabulary()``, which the network takes as its own), the region's mask as the target (``target="box"``: its
    box). Validation: ``val_limit`` samples of the ``test`` split, evenly spaced (choice: the official code
    validates nothing while it trains)."""

    def __init__(
        self,
        root: str,
        annotations: str | None = None,
        input_size: int = 512,
        keep_aspect: bool = True,
        target: str = "mask",
        val_limit: int | None = 1000,
        allow_missing: bool = False,
        batch_size: int = 10,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()

    def vocabulary(self) -> list[str]:
        """The official vocabulary (``vocabulary_referit.txt``), specials first, in the file's order."""
        return ReferItAnnotations(self.hparams.root, self.hparams.annotations).vocabulary().words

    def train_sentences(self) -> list[str]:
        ann = ReferItAnnotations(self.hparams.root, self.hparams.annotations)
        return [d for descriptions in ann.queries("trainval").values() for d in descriptions]

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        kw = dict(annotations=hp.annotations, input_size=hp.input_size, keep_aspect=hp.keep_aspect, target=hp.target,
                  allow_missing=hp.allow_missing)
        self.train_set = ReferItRegions(hp.root, "trainval", **kw)
        self.val_set = ReferItRegions(hp.root, "test", limit=hp.val_limit, **kw) if hp.val_limit != 0 else None
