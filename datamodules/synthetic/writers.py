"""Writers that put synthetic videos on disk in the real datasets' layouts.

One loader then reads real and synthetic data alike: OTB (``<Seq>/img/%04d.jpg`` +
``groundtruth_rect.txt``), ALOV300++ (``imagedata++/<category>/<video>/%08d.jpg`` + ``.ann`` every 5th
frame), UCF101 (``<Class>/v_<Class>_gXX_cYY.avi`` + ``ucfTrainTestlist/``), A2D Sentences (``Release/`` +
``text_annotations/`` with HDF5 masks), J-HMDB Sentences (PNG frames + ``puppet_mask.mat``), and for
spatio-temporal action detection UCF101-24 as ROAD releases it (``rgb-images/``, flow images, ``splitfiles/``) and
J-HMDB-21 / UCF-Sports in ACT's layout (``Frames/``, ``FlowBrox04/``, ``*-GT.pkl``), and ReferIt as the language
tracker's lingual network reads it (``referit-dataset/images``, ``.mat`` masks, ``data/*.json``).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from datamodules import a2d_sentences as a2d
from datamodules import jhmdb_sentences as jhmdb
from datamodules import referit
from datamodules.action_tubes import TubeAnnotations, write_act_gt, write_pyannot, write_split_list
from datamodules.alov import ANN_DIR, FRAMES_DIR, write_ann
from datamodules.otb import write_boxes
from datamodules.synthetic.generator import MOTIONS, SyntheticVideo, TubeVideo, referring_sentence
from datamodules.ucf101 import SPLIT_DIR
from zoo.nn.text import tokenize

UCF_CLASSES = ("Linear", "Bouncing", "Circular", "ZigZag", "Still", "Growing", "Shrinking")
ALOV_ANNOTATION_STEP = 5
UCF_GROUPS = 25
JPEG_QUALITY = 95


def _write_jpegs(folder: Path, frames: np.ndarray, pattern: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames, 1):
        cv2.imwrite(str(folder / (pattern % t)), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def write_avi(path: Path, frames: np.ndarray, fps: float) -> None:
    """MPEG-4 Part 2 in AVI with the XVID tag, as UCF101 ships its videos."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=int(round(fps)))
        stream.codec_tag = "XVID"
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 in MP4 (yuv420p, near-lossless), as A2D's ``clips320H``; height and width must be even."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def otb_name(video: SyntheticVideo, index: int) -> str:
    return f"Synth{index:04d}"


def write_otb(videos: Iterable[SyntheticVideo], out: Path) -> list[str]:
    """One sequence per video; the target is object 0. Returns the sequence names."""
    names = []
    for i, video in enumerate(videos):
        seq = out / otb_name(video, i)
        _write_jpegs(seq / "img", video.frames, "%04d.jpg")
        write_boxes(seq / "groundtruth_rect.txt", video.target.boxes)
        names.append(seq.name)
    return names


def write_otb99lang(videos: Iterable[SyntheticVideo], out: Path, train_fraction: float = 0.5) -> list[str]:
    """OTB99-lang layout: the OTB sequences under ``OTB_videos`` and the target's sentence, made to single it out
    in the first frame (``referring_sentence``), as the query, the
    first ``train_fraction`` of the videos in ``OTB_query_train``, the rest in ``OTB_query_test``."""
    videos = list(videos)
    names = write_otb(videos, out / "OTB_videos")
    n_train = int(round(train_fraction * len(videos)))
    for i, (video, name) in enumerate(zip(videos, names)):
        folder = out / ("OTB_query_train" if i < n_train else "OTB_query_test")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text(referring_sentence(video) + "\n")
    return names


def _referit_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",\n", ":\n")))  # text_objseg's util/io.save_json


def write_referit(videos: Iterable[SyntheticVideo], out: Path, train_fraction: float = 0.5) -> list[str]:
    """ReferIt as the official lang_seg_model reads it (``datamodules.referit``): each video's first frame is an
    image (ids 1, 2, ...), each object visible there a region ``<image>_<k>`` (k from 1, the target first) with its
    ``.mat`` mask, box and one description made to single it out (``referring_sentence``); the first
    ``train_fraction`` of the images are ``trainval``, the rest ``test``; the vocabulary is the trainval words by
    frequency after ``<pad> <go> <eos> <unk>``, as the official file. Returns the image ids."""
    videos = list(videos)
    images, masks = out / referit.IMAGE_DIRS[0], out / referit.MASK_DIRS[0]
    data = out / referit.ANNOTATION_DIRS[0]
    n_train = int(round(train_fraction * len(videos)))
    queries: dict[str, dict[str, list[str]]] = {split: {} for split in referit.SPLITS}
    imlists: dict[str, list[str]] = {split: [] for split in referit.SPLITS}
    boxes, sizes, ids = {}, {}, []
    for i, video in enumerate(videos):
        image, split = str(i + 1), referit.SPLITS[0] if i < n_train else referit.SPLITS[1]
        images.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(images / f"{image}.jpg"), video.frames[0][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        h, w = video.frames.shape[1:3]
        sizes[f"{image}.jpg"] = [w, h]
        visible = [o for o in video.objects if o.visible[0] and o.masks[0].any()]
        for k, obj in enumerate(visible, 1):
            region = f"{image}_{k}"
            others = [o for o in video.objects if o is not obj]
            sentence = referring_sentence(dataclasses.replace(video, objects=[obj, *others]))
            queries[split][region] = [sentence]
            x, y, bw, bh = (int(v) for v in obj.boxes[0])
            boxes[region] = [x, y, x + bw - 1, y + bh - 1]
            referit.write_mask(masks / f"{region}.mat", obj.masks[0])
        imlists[split].append(image)
        ids.append(image)
    for split in referit.SPLITS:
        _referit_json(data / referit.QUERY_FILE.format(split), queries[split])
        (data / referit.IMLIST_FILE.format(split)).write_text("".join(f"{n}\n" for n in imlists[split]))
    _referit_json(data / referit.BBOX_FILE, boxes)
    _referit_json(data / referit.IMSIZE_FILE, sizes)
    counts = Counter(t for d in queries["trainval"].values() for s in d for t in tokenize(s))
    words = sorted(counts, key=lambda t: (-counts[t], t))
    (data / referit.VOCAB_FILE).write_text("".join(f"{w}\n" for w in ["<pad>", "<go>", "<eos>", "<unk>", *words]))
    return ids


def alov_category(video: SyntheticVideo) -> str:
    return f"{video.label + 1:02d}-{UCF_CLASSES[video.label]}"


def write_alov(videos: Iterable[SyntheticVideo], out: Path) -> list[str]:
    """Videos grouped by the target's motion as category; boxes of every 5th frame where visible."""
    counts: dict[str, int] = {}
    names = []
    for video in videos:
        category = alov_category(video)
        counts[category] = counts.get(category, 0) + 1
        name = f"{category}_video{counts[category]:05d}"
        _write_jpegs(out / FRAMES_DIR / category / name, video.frames, "%08d.jpg")
        boxes = video.target.boxes
        annotated = {t + 1: boxes[t] for t in range(0, len(boxes), ALOV_ANNOTATION_STEP) if not np.isnan(boxes[t, 0])}
        (out / ANN_DIR / category).mkdir(parents=True, exist_ok=True)
        write_ann(out / ANN_DIR / category / f"{name}.ann", annotated)
        names.append(f"{category}/{name}")
    return names


def ucf_group(j: int, n: int) -> int:
    """Group (1..25) of the j-th of n videos of a class, spread over all groups as in UCF101."""
    return 1 + (j * UCF_GROUPS) // max(n, 1)


def ucf_test_groups(split: int) -> range:
    """Groups held out by official split 1, 2, 3: 1-7, 8-14, 15-21."""
    return range(7 * (split - 1) + 1, 7 * split + 1)


def write_ucf101(videos: Iterable[SyntheticVideo], out: Path) -> list[tuple[str, int]]:
    """Videos labelled by the target's motion, with ``ucfTrainTestlist`` for the three splits (CRLF)."""
    videos = list(videos)
    per_class: dict[int, list[SyntheticVideo]] = {}
    for video in videos:
        per_class.setdefault(video.label, []).append(video)
    entries: list[tuple[str, int, int]] = []  # (relpath, label, group)
    for label, members in sorted(per_class.items()):
        cls = UCF_CLASSES[label]
        clips: dict[int, int] = {}
        for j, video in enumerate(members):
            group = ucf_group(j, len(members))
            clips[group] = clips.get(group, 0) + 1
            rel = f"{cls}/v_{cls}_g{group:02d}_c{clips[group]:02d}.avi"
            write_avi(out / rel, video.frames, video.fps)
            entries.append((rel, label, group))
    lists = out / SPLIT_DIR
    lists.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(
        crlf.join(f"{i + 1} {c}" for i, c in enumerate(UCF_CLASSES[: len(MOTIONS)])).encode() + b"\r\n"
    )
    for split in (1, 2, 3):
        test = ucf_test_groups(split)
        train_lines = [f"{rel} {label + 1}" for rel, label, g in entries if g not in test]
        test_lines = [rel for rel, _, g in entries if g in test]
        (lists / f"trainlist{split:02d}.txt").write_bytes((crlf.join(train_lines) + crlf).encode())
        (lists / f"testlist{split:02d}.txt").write_bytes((crlf.join(test_lines) + crlf).encode())
    return [(rel, label) for rel, label, _ in entries]


A2D_ANNOTATED_FRAMES = 3
A2D_TEST_EVERY = 4  # every 4th video is in the test subset


def annotated_frames(num_frames: int, count: int = A2D_ANNOTATED_FRAMES) -> list[int]:
    """1-based frame numbers of the ``count`` annotated frames, spread evenly inside the video as in A2D (fewer when
    the video has fewer frames; never frame 0, which short videos would round to)."""
    return sorted({min(max(int(round((j + 1) * num_frames / (count + 1))), 1), num_frames) for j in range(count)})


def write_a2d(videos: Iterable[SyntheticVideo], out: Path) -> list[str]:
    """A2D + A2D Sentences layout: every actor is an instance (ids 0, 1, ...) with its sentence; the actors with a
    mask on each annotated frame go in that frame's ``.h5``; every ``A2D_TEST_EVERY``-th video is a test video.
    Returns the video ids."""
    names, rows, queries = [], [], ["video_id,instance_id,query"]
    for i, video in enumerate(videos):
        vid = video.name
        n_frames = len(video.frames)
        write_mp4(out / a2d.CLIPS_DIR / f"{vid}.mp4", video.frames, video.fps)
        frames = annotated_frames(n_frames)
        for t in frames:
            present = [k for k, o in enumerate(video.objects) if o.masks[t - 1].any()]
            boxes = [video.objects[k].boxes[t - 1] for k in present]
            write_frame = a2d.write_frame_annotation
            write_frame(out / a2d.INSTANCES_DIR / vid / f"{t:05d}.h5", present,
                        np.stack([video.objects[k].masks[t - 1] for k in present]),
                        np.array([[x, y, x + w - 1, y + h - 1] for x, y, w, h in boxes]))
        queries += [f"{vid},{k},{o.sentence}" for k, o in enumerate(video.objects)]
        h, w = video.frames.shape[1:3]
        subset = int(i % A2D_TEST_EVERY == A2D_TEST_EVERY - 1)
        rows.append(f"{vid},{video.label},0,{n_frames / video.fps:.2f},{h},{w},{n_frames},{len(frames)},{subset}")
        names.append(vid)
    (out / a2d.VIDEOSET).write_text("\n".join(rows) + "\n")
    (out / a2d.ANNOTATION).write_text("\n".join(queries) + "\n")
    (out / a2d.MISSED).write_text("")
    return names


JHMDB_SAMPLED_FRAMES = 3


def write_jhmdb_sentences(videos: Iterable[SyntheticVideo], out: Path) -> list[str]:
    """J-HMDB Sentences layout: actor 0 is the video's one referred actor (its motion the action folder), frames as
    ``%05d.png``, its masks in ``puppet_mask.mat``, its sentence in ``jhmdb_annotation.txt``, and MTTR's samples
    list with three frames per video. Returns the video names."""
    names, rows, samples = [], ["video_id,query"], []
    for video in videos:
        action, name = video.target.motion, video.name
        frames_dir = out / jhmdb.FRAMES_DIR / action / name
        frames_dir.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(video.frames, 1):
            cv2.imwrite(str(frames_dir / f"{t:05d}.png"), frame[..., ::-1])
        mask_path = out / jhmdb.MASKS_DIR / action / name / jhmdb.MASK_FILE
        jhmdb.write_puppet_mask(mask_path, video.target.masks)
        rows.append(f"{name},{video.target.sentence}")
        n = len(video.frames)
        for t in annotated_frames(n, JHMDB_SAMPLED_FRAMES):
            samples.append([name, f"./jhmdb_sentences/{jhmdb.FRAMES_DIR}/{action}/{name}/{t:05d}.png",
                            f"./jhmdb_sentences/{jhmdb.MASKS_DIR}/{action}/{name}/{jhmdb.MASK_FILE}", n,
                            video.target.sentence])
        names.append(name)
    (out / jhmdb.ANNOTATION).write_text("\n".join(rows) + "\n")
    (out / jhmdb.METADATA).write_text(json.dumps(samples))
    return names


# ------------------------------------------------------------------------------- spatio-temporal action detection
UCF24_FLOW_DIR = "fastOF-images"  # the flow Two-in-One reads (DIS); ROAD also ships brox-images/
ACT_FLOW_DIR = "FlowBrox04"
ACT_FRAME_EXT = {"jhmdb": "png", "ucfsports": "jpg"}  # ACT/MOC imagefile(): JHMDB Frames are PNG, UCFSports JPEG
ACT_GT_FILE = {"jhmdb": "JHMDB-GT.pkl", "ucfsports": "UCFSports-GT.pkl"}
ACT_SPLITS = {"jhmdb": 3, "ucfsports": 1}
UCF24_GROUP_STEP = 9  # a class's videos cycle through the 25 groups 9 apart: 7 in 25 land in groups 1-7 (test)


def _write_images(folder: Path, frames: Iterable[np.ndarray], ext: str) -> None:
    """RGB images as ``00001.<ext>`` .. (1-based)."""
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext == "jpg" else []
    for t, frame in enumerate(frames, 1):
        cv2.imwrite(str(folder / f"{t:05d}.{ext}"), frame[..., ::-1], params)


def flow_frames(frames: np.ndarray, method: str = "dis") -> list[np.ndarray]:
    """One flow image (RGB = x, y, magnitude) per frame, as ``zoo prepare flow`` makes them
    (``datamodules.flow_images``): frame t's image is the flow from t to t + 1, and the last frame repeats the one
    before (as many flow images as frames); computed from the frames before JPEG compression."""
    from datamodules.flow_images import flow_image

    flows = [flow_image(frames[t], frames[t + 1], method=method) for t in range(len(frames) - 1)]
    return flows + flows[-1:] if flows else [np.full_like(frames[0], 128)] * len(frames)


def ucf24_group(j: int, label: int) -> int:
    """The group (1..25) of the ``j``-th video of class ``label``: each class cycles through all 25 groups, 9 apart,
    from its own start (1, 10, 19, 3, ... for class 0; 3, 12, 21, 5, ... for class 1), so that a third of the
    classes' first videos and 7 in 25 of the videos of any class are in UCF101's split-1 test groups 1-7."""
    return 1 + (UCF24_GROUP_STEP * (j + 3 * label)) % UCF_GROUPS


def ucf24_name(cls: str, group: int, clips: dict[tuple[str, int], int]) -> str:
    """``<cls>/v_<cls>_gXX_cYY`` as UCF101 names its videos, the clip number counted per class and group in
    ``clips``."""
    clips[cls, group] = clips.get((cls, group), 0) + 1
    return f"{cls}/v_{cls}_g{group:02d}_c{clips[cls, group]:02d}"


def write_ucf101_24(videos: Iterable[TubeVideo], out: Path, flow_dir: str = UCF24_FLOW_DIR,
                    flow_method: str = "dis") -> list[str]:
    """UCF101-24 as ROAD / Two-in-One read it: ``rgb-images/<Class>/<video>/%05d.jpg`` (1-based), flow images of the
    same names in ``flow_dir`` (``flow_frames``), ``splitfiles/pyannot.pkl`` and split 1's ``trainlist01.txt`` /
    ``testlist01.txt`` (groups 1-7 are test, as UCF101's split 1; ``ucf24_group``). Classes are the videos'
    ``classes`` (motion names; pyannot.pkl stores only indices, so they are also listed in
    ``splitfiles/classes.txt``, one a line in label order). Returns the video names in the order given."""
    names, annotations, test_set = [], {}, set()
    clips: dict[tuple[str, int], int] = {}
    per_class: dict[int, int] = {}
    classes: tuple[str, ...] = ()
    for video in videos:
        classes = video.classes
        j = per_class[video.label] = per_class.get(video.label, -1) + 1
        group = ucf24_group(j, video.label)
        name = ucf24_name(classes[video.label], group, clips)
        _write_images(out / "rgb-images" / name, video.frames, "jpg")
        _write_images(out / flow_dir / name, flow_frames(video.frames, flow_method), "jpg")
        annotations[name] = video.video_tubes(name)
        if group in ucf_test_groups(1):
            test_set.add(name)
        names.append(name)
    split = ([n for n in names if n not in test_set], [n for n in names if n in test_set])
    ann = TubeAnnotations("ucf101-24", list(classes), annotations, {1: split})
    splitfiles = out / "splitfiles"
    splitfiles.mkdir(parents=True, exist_ok=True)
    write_pyannot(ann, splitfiles / "pyannot.pkl")
    write_split_list(split[0], splitfiles / "trainlist01.txt")
    write_split_list(split[1], splitfiles / "testlist01.txt")
    (splitfiles / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    return names


def act_splits(names: list[str], labels: list[int], num_splits: int) -> dict[int, tuple[list[str], list[str]]]:
    """Split ``k`` (1-based) tests the ``j``-th video of class ``c`` when ``(j + c) mod 3 = k - 1``: a third of each
    class, every video tested in exactly one of J-HMDB's three splits, and even a few videos fill every test set.
    The rest train."""
    seen: dict[int, int] = {}
    turn = []
    for label in labels:
        j = seen.get(label, 0)
        seen[label] = j + 1
        turn.append((j + label) % 3)
    return {k: ([n for n, r in zip(names, turn) if r != k - 1], [n for n, r in zip(names, turn) if r == k - 1])
            for k in range(1, num_splits + 1)}


def write_act(videos: Iterable[TubeVideo], out: Path, dataset: str = "jhmdb", flow_method: str = "dis") -> list[str]:
    """J-HMDB-21 (``dataset="jhmdb"``, 3 splits) or UCF-Sports (``"ucfsports"``, 1 split) in ACT's layout
    (Kalogeiton et al. ICCV 2017): ``Frames/<Class>/<video>/%05d.png`` (J-HMDB) or ``.jpg`` (UCF-Sports), flow
    images ``FlowBrox04/<Class>/<video>/%05d.jpg`` (computed with ``flow_method``, not Brox), and ``JHMDB-GT.pkl`` /
    ``UCFSports-GT.pkl``. Returns the video names (``<Class>/<video>``) in the order given."""
    if dataset not in ACT_GT_FILE:
        raise ValueError(f"dataset must be one of {sorted(ACT_GT_FILE)}, not {dataset!r}")
    names, labels, annotations = [], [], {}
    classes: tuple[str, ...] = ()
    for video in videos:
        classes = video.classes
        name = f"{classes[video.label]}/{video.name}"
        _write_images(out / "Frames" / name, video.frames, ACT_FRAME_EXT[dataset])
        _write_images(out / ACT_FLOW_DIR / name, flow_frames(video.frames, flow_method), "jpg")
        annotations[name] = video.video_tubes(name)
        names.append(name)
        labels.append(video.label)
    ann = TubeAnnotations(dataset, list(classes), annotations, act_splits(names, labels, ACT_SPLITS[dataset]))
    out.mkdir(parents=True, exist_ok=True)
    write_act_gt(ann, out / ACT_GT_FILE[dataset])
    return names


def write_jhmdb(videos: Iterable[TubeVideo], out: Path, flow_method: str = "dis") -> list[str]:
    """J-HMDB-21 in ACT's layout (``write_act``)."""
    return write_act(videos, out, "jhmdb", flow_method)


def write_ucfsports(videos: Iterable[TubeVideo], out: Path, flow_method: str = "dis") -> list[str]:
    """UCF-Sports in ACT's layout (``write_act``)."""
    return write_act(videos, out, "ucfsports", flow_method)
