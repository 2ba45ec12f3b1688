"""A2D Sentences and J-HMDB Sentences: the real annotation files, synthetic round trips against the generator's
ground truth, the MATLAB-transposed ``.h5`` layout, clip indices, bad input and the datamodule."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from datamodules import a2d_sentences as a2d
from datamodules import jhmdb_sentences as jhmdb
from datamodules.a2d_sentences import (
    A2DSample,
    A2DSentences,
    A2DSentencesDataModule,
    Query,
    read_annotations,
    read_frame_annotation,
    read_videoset,
    write_frame_annotation,
)
from datamodules.clips import clip_indices
from datamodules.jhmdb_sentences import (
    JHMDBSample,
    JHMDBSentences,
    read_jhmdb_annotations,
    read_puppet_mask,
    read_samples_metadata,
    write_puppet_mask,
)
from datamodules.synthetic import SynthConfig, generate_actor_video, synthesize
from datamodules.synthetic.writers import A2D_TEST_EVERY, JHMDB_SAMPLED_FRAMES, annotated_frames, write_a2d
from zoo.errors import DatasetError, VideoReadError
from zoo.nn.text import Vocabulary

SEED = 5
NUM_VIDEOS = 6  # video 3 is the one test video (every 4th)
NUM_JHMDB = 4
CFG = SynthConfig(height=48, width=64, num_frames=16, min_size=5, max_size=9, max_objects=3)
H, W, T = CFG.height, CFG.width, CFG.num_frames


@contextmanager
def one_line(where: str, exc: type[Exception] = DatasetError) -> Iterator[pytest.ExceptionInfo]:
    """``pytest.raises`` for an ``exc`` whose message names ``where`` (``file:line: ...``) and is one line."""
    with pytest.raises(exc, match=re.escape(where)) as e:
        yield e
    assert "\n" not in str(e.value), str(e.value)


@pytest.fixture(scope="module")
def videos():
    """The generator's ground truth of the synthetic sets (regenerated here, not read back)."""
    return [generate_actor_video(SEED, i, CFG) for i in range(NUM_VIDEOS)]


@pytest.fixture(scope="module")
def a2d_root(tmp_path_factory) -> Path:
    return synthesize("a2d", tmp_path_factory.mktemp("a2d") / "a2d", num_videos=NUM_VIDEOS, seed=SEED, cfg=CFG)


@pytest.fixture(scope="module")
def jhmdb_root(tmp_path_factory) -> Path:
    return synthesize("jhmdb-sentences", tmp_path_factory.mktemp("jhmdb") / "jhmdb", num_videos=NUM_JHMDB, seed=SEED,
                      cfg=CFG)


def _copy(root: Path, tmp_path: Path) -> Path:
    """A private copy of a module-scoped set, for the tests that break it."""
    return Path(shutil.copytree(root, tmp_path / root.name))


def _expected_a2d_samples(videos, subset: str) -> list[A2DSample]:
    """(video, frame, instance, sentence) of every actor with a mask on an annotated frame of the subset's videos."""
    out = []
    for i, v in enumerate(videos):
        if int(i % A2D_TEST_EVERY == A2D_TEST_EVERY - 1) != a2d.SUBSETS[subset]:
            continue
        for t in annotated_frames(T):
            out += [A2DSample(v.name, t, k, o.sentence) for k, o in enumerate(v.objects) if o.masks[t - 1].any()]
    return out


def _key(s: A2DSample) -> tuple:
    return s.video, s.frame, s.instance


# --------------------------------------------------------------------------------------------- real annotations


def test_real_a2d_annotation(shared):
    path = shared / "a2d" / "a2d_annotation.txt"
    queries, dropped = read_annotations(path)
    assert len(queries) + len(dropped) == 6655
    assert len(queries) == 6654 and all(isinstance(q.instance, int) for q in queries)
    lines = path.read_text().splitlines()
    assert len(dropped) == 1
    line, raw = dropped[0]
    assert raw == "1 (copy)" and lines[line - 1].startswith("T6bNPuKV-wY,1 (copy),")
    # ids that start with "-" are kept whole, and every query's line is its line in the file
    assert queries[0] == Query("--h5fAKYurM", 0, "the pigeon is limping", 2)
    assert sum(q.video.startswith("-") for q in queries) > 10
    for q in queries:
        video, instance, sentence = lines[q.line - 1].split(",")[:3]
        assert (video, int(instance), sentence.strip()) == (q.video, q.instance, q.sentence)
    # fields are trimmed: rows with a trailing and with a leading space in the file
    assert lines[11] == "-2GEt8vi2RA,0,a car is flying ,a car"
    assert lines[52] == "-EKuFGo77JM,1, green ball is on the floor,green ball"
    by_line = {q.line: q for q in queries}
    assert by_line[12].sentence == "a car is flying" and by_line[53].sentence == "green ball is on the floor"
    assert sum(s != s.strip() for s in (ln.split(",")[2] for ln in lines[1:])) > 100  # many such rows
    assert all(q.sentence == q.sentence.strip() and q.video == q.video.strip() and q.sentence for q in queries)
    assert len({q.video for q in queries}) == 3754
    assert [q.instance for q in queries if q.video == "T6bNPuKV-wY"] == [0, 1, 2, 3]  # its real 1 is kept


def test_real_jhmdb_samples_metadata(shared):
    samples = read_samples_metadata(shared / "jhmdb" / jhmdb.METADATA)
    assert len(samples) == 2784
    assert samples[0] == JHMDBSample("100_pullups_pullup_f_nm_np1_fr_med_1", "pullup", 2, 40, "man in black pulling up")
    per_video = Counter(s.video for s in samples)
    assert len(per_video) == 928 and set(per_video.values()) == {3}
    assert all(1 <= s.frame <= s.num_frames for s in samples)
    actions = {s.video: s.action for s in samples}
    assert all(actions[s.video] == s.action for s in samples)  # one action per video
    assert len({s.sentence for s in samples if s.video == samples[0].video}) == 1  # one sentence per video
    splits = shared / "jhmdb" / "splits"
    split_videos = {}
    for path in splits.glob("*_test_split1.txt"):
        action = path.name[: -len("_test_split1.txt")]
        for line in path.read_text().splitlines():
            if line.strip():
                split_videos[line.split()[0].removesuffix(".avi")] = action
    assert len(set(actions.values())) == 21 and set(actions.values()) == set(split_videos.values())
    assert actions == split_videos  # every video under its split file's action


# --------------------------------------------------------------------------------------------- synthetic A2D


def test_a2d_files_round_trip(a2d_root, videos):
    videoset = read_videoset(a2d_root / a2d.VIDEOSET)
    queries, dropped = read_annotations(a2d_root / a2d.ANNOTATION)
    assert not dropped
    assert sorted(videoset) == sorted(v.name for v in videos)
    for i, v in enumerate(videos):
        row = videoset[v.name]
        assert (row.height, row.width, row.total_frames) == (H, W, T)
        assert row.annotated_frames == len(annotated_frames(T)) and row.label == v.label
        assert row.subset == (1 if i % A2D_TEST_EVERY == A2D_TEST_EVERY - 1 else 0)
        assert [(q.instance, q.sentence) for q in queries if q.video == v.name] == [
            (k, o.sentence) for k, o in enumerate(v.objects)]
        folder = a2d_root / a2d.INSTANCES_DIR / v.name
        assert sorted(p.name for p in folder.glob("*.h5")) == [f"{t:05d}.h5" for t in annotated_frames(T)]
        for t in annotated_frames(T):
            ann = read_frame_annotation(folder / f"{t:05d}.h5")
            assert ann.instances == [k for k, o in enumerate(v.objects) if o.masks[t - 1].any()]
            assert ann.masks.shape == (len(ann.instances), H, W) and ann.masks.dtype == bool
            for k, mask, box in zip(ann.instances, ann.masks, ann.boxes):
                assert np.array_equal(mask, v.objects[k].masks[t - 1]), (v.name, t, k)
                x, y, w, h = v.objects[k].boxes[t - 1]
                assert box.tolist() == [x, y, x + w - 1, y + h - 1], (v.name, t, k)
    assert sum(row.subset for row in videoset.values()) == NUM_VIDEOS // A2D_TEST_EVERY


def test_a2d_actor_hidden_on_annotated_frames(tmp_path):
    """Only actors with a mask go in a frame's .h5 (one left: the (W, H) layout); a query whose actor is hidden on
    every annotated frame gives no sample and is counted in ``missing`` at its line."""
    v = generate_actor_video(SEED, 0, CFG)
    assert len(v.objects) == 3
    first, *rest = annotated_frames(T)
    v.objects[1].masks[first - 1] = False
    for t in (first, *rest):
        v.objects[2].masks[t - 1] = False
    write_a2d([v], tmp_path)
    h5 = tmp_path / a2d.INSTANCES_DIR / v.name / f"{first:05d}.h5"
    with h5py.File(h5, "r") as f:
        assert f["reMask"].shape == (W, H) and f["reBBox"].shape == (4, 1)
    ann = read_frame_annotation(h5)
    assert ann.instances == [0] and np.array_equal(ann.masks[0], v.objects[0].masks[first - 1])
    ds = A2DSentences(tmp_path, "train", num_frames=2, input_size=16)
    assert [(s.frame, s.instance) for s in ds.samples] == [(first, 0)] + [(t, k) for t in rest for k in (0, 1)]
    assert ds.missing == {f"{v.name}#4": f"{tmp_path / a2d.ANNOTATION}:4: no mask in any frame"}
    assert np.array_equal(ds[0]["gt"].numpy(), v.objects[0].masks[first - 1])


@pytest.mark.parametrize("subset", ["train", "test"])
def test_a2d_dataset_items(a2d_root, videos, subset):
    num_frames, step, size = 4, 2, 32
    ds = A2DSentences(a2d_root, subset, num_frames=num_frames, frame_step=step, input_size=size)
    assert not ds.missing
    assert sorted(ds.samples, key=_key) == sorted(_expected_a2d_samples(videos, subset), key=_key)
    assert ds.sentences() == [s.sentence for s in ds.samples]
    by_name = {v.name: v for v in videos}
    for k, s in enumerate(ds.samples):
        item = ds[k]
        v = by_name[s.video]
        assert (item["video"], item["frame"], item["instance"], item["index"]) == (s.video, s.frame, s.instance, k)
        assert item["sentence"] == s.sentence == v.objects[s.instance].sentence
        gt = v.objects[s.instance].masks[s.frame - 1]
        assert item["gt"].dtype == torch.bool and np.array_equal(item["gt"].numpy(), gt)
        small = cv2.resize(gt.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
        assert item["mask"].dtype == torch.float32 and np.array_equal(item["mask"].numpy(), small)
        clip = item["clip"]
        assert clip.dtype == torch.uint8 and clip.shape == (3, num_frames, size, size)
        indices = clip_indices(s.frame - 1, T, num_frames, step)
        assert indices[num_frames // 2] == s.frame - 1
        every = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in v.frames]).astype(float)
        for j, t in enumerate(indices):  # lossy H.264: close, not equal
            diffs = np.abs(every - clip[:, j].permute(1, 2, 0).numpy()).mean(axis=(1, 2, 3))
            assert diffs[t] < 8, (s, j, diffs[t])
            assert diffs[t] <= diffs.min() + 0.5, (s, j, diffs)  # that frame, not a neighbour (ties: no motion)


# --------------------------------------------------------------------------------------------- synthetic J-HMDB


def test_jhmdb_files_round_trip(jhmdb_root, videos):
    assert read_jhmdb_annotations(jhmdb_root / jhmdb.ANNOTATION) == {
        v.name: v.target.sentence for v in videos[:NUM_JHMDB]}
    for v in videos[:NUM_JHMDB]:
        masks = read_puppet_mask(jhmdb_root / jhmdb.MASKS_DIR / v.target.motion / v.name / jhmdb.MASK_FILE)
        assert masks.shape == (T, H, W) and masks.dtype == bool
        assert np.array_equal(masks, v.target.masks)
    samples = read_samples_metadata(jhmdb_root / jhmdb.METADATA)
    assert samples == [JHMDBSample(v.name, v.target.motion, t, T, v.target.sentence)
                       for v in videos[:NUM_JHMDB] for t in annotated_frames(T, JHMDB_SAMPLED_FRAMES)]


@pytest.mark.parametrize("mode", ["three", "all"])
def test_jhmdb_dataset_items(jhmdb_root, videos, mode):
    num_frames, size = 4, 32
    ds = JHMDBSentences(jhmdb_root, mode, num_frames=num_frames, input_size=size)
    per_video = Counter(s.video for s in ds.samples)
    assert per_video == {v.name: 3 if mode == "three" else T for v in videos[:NUM_JHMDB]}
    if mode == "all":
        assert [s.frame for s in ds.samples] == list(range(1, T + 1)) * NUM_JHMDB
    by_name = {v.name: v for v in videos}
    for k in range(0, len(ds), 1 if mode == "three" else 5):
        s, item = ds.samples[k], ds[k]
        v = by_name[s.video]
        assert item["sentence"] == v.target.sentence and item["frame"] == s.frame
        assert np.array_equal(item["gt"].numpy(), v.target.masks[s.frame - 1])
        assert item["clip"].shape == (3, num_frames, size, size)
        centre = item["clip"][:, num_frames // 2].permute(1, 2, 0).numpy()  # PNG frames: exact
        assert np.array_equal(centre, cv2.resize(v.frames[s.frame - 1], (size, size), interpolation=cv2.INTER_AREA))


# --------------------------------------------------------------------------------------------- .h5 layout, clips


@pytest.mark.parametrize("n", [1, 3])
def test_h5_transposition_round_trip(tmp_path, n):
    rng = np.random.default_rng(n)
    masks = rng.random((n, 5, 7)) > 0.5  # H=5, W=7: a transposition cannot go unseen
    boxes = rng.integers(0, 5, size=(n, 4)).astype(np.float64)
    ids = [4, 0, 2][:n]
    path = tmp_path / "00007.h5"
    write_frame_annotation(path, ids, masks, boxes)
    ann = read_frame_annotation(path)
    assert ann.instances == ids and ann.masks.shape == (n, 5, 7)
    assert np.array_equal(ann.masks, masks) and np.array_equal(ann.boxes, boxes)
    assert np.array_equal(ann.mask_of(ids[-1]), masks[-1]) and ann.mask_of(9) is None
    with h5py.File(path, "r") as f:  # as the release stores them (written by MATLAB)
        assert f["reMask"].shape == ((7, 5) if n == 1 else (n, 7, 5))
        assert np.array_equal(f["reMask"][()], masks[0].T if n == 1 else masks.transpose(0, 2, 1))
        assert f["reBBox"].shape == (4, n) and np.array_equal(f["reBBox"][()], boxes.T)
        assert f["instance"][()].ravel().tolist() == ids


def test_h5_matlab_layout_read_directly(tmp_path):
    """A file laid out as MATLAB writes one instance (1 x 1 id, W x H mask, 4 x 1 box), made without the writer."""
    mask = np.zeros((5, 7), np.uint8)
    mask[1:3, 2:6] = 1
    path = tmp_path / "00001.h5"
    with h5py.File(path, "w") as f:
        f["instance"] = np.array([[2.0]])
        f["reMask"] = mask.T
        f["reBBox"] = np.array([[2.0], [1.0], [5.0], [2.0]])
    ann = read_frame_annotation(path)
    assert ann.instances == [2] and np.array_equal(ann.masks[0], mask > 0) and ann.boxes.tolist() == [[2, 1, 5, 2]]


def test_clip_indices_edges_and_centre():
    assert clip_indices(5, 20, 4, 2).tolist() == [1, 3, 5, 7]  # centre at index 4 // 2 = 2
    assert clip_indices(1, 20, 4, 2).tolist() == [0, 0, 1, 3]  # start: the first frame repeats
    assert clip_indices(18, 20, 4, 2).tolist() == [14, 16, 18, 19]  # end: the last frame repeats
    assert clip_indices(0, 10, 5, 2).tolist() == [0, 0, 0, 2, 4]
    assert clip_indices(9, 10, 5, 2).tolist() == [5, 7, 9, 9, 9]
    assert clip_indices(1, 3, 6, 2).tolist() == [0, 0, 0, 1, 2, 2]  # both ends at once
    assert clip_indices(0, 1, 3, 2).tolist() == [0, 0, 0] and clip_indices(4, 9, 1).tolist() == [4]
    for centre in range(10):
        for num_frames in (1, 2, 3, 4, 8):
            assert clip_indices(centre, 10, num_frames, 2)[num_frames // 2] == centre


def test_annotated_frames_are_inside_the_video(tmp_path):
    assert annotated_frames(16) == [4, 8, 12] and annotated_frames(40, 3) == [10, 20, 30]
    for n in range(1, 12):  # short videos once rounded to frame 0, which wrote 00000.h5 with the last frame's masks
        frames = annotated_frames(n)
        assert frames and all(1 <= t <= n for t in frames), (n, frames)
    bad = tmp_path / "00000.h5"
    write_frame_annotation(bad, [0], np.ones((1, 4, 6), bool), np.array([[0, 0, 5, 3]]))
    with one_line(f"{bad}: A2D annotation files are named <frame number>.h5 (1-based)"):
        a2d.frame_number(bad)
    assert a2d.frame_number(tmp_path / "00012.h5") == 12


# --------------------------------------------------------------------------------------------- bad input


def test_sentence_of_unknown_words_warns_naming_its_source(a2d_root, caplog):
    vocab = Vocabulary.build(A2DSentences(a2d_root, "train", num_frames=2, input_size=16).sentences())
    source = f"{a2d_root / a2d.ANNOTATION}:7"
    with caplog.at_level(logging.WARNING, logger="zoo.nn.text"):
        assert vocab.encode("the green circle", 4, source=source) != [0, 1, 1, 1]
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="zoo.nn.text"):
        assert vocab.encode("Zebra quokka!", 4, source=source) == [0, 1, 1, 1]  # <pad>, <unk> x 3 (fallback)
    assert len(caplog.records) == 1 and source in caplog.text and "Zebra quokka" in caplog.text
    with one_line(f"{source}: empty sentence"):
        vocab.encode(" . ", 4, source=source)


def test_a2d_video_without_annotation_folder_is_counted_missing(a2d_root, videos, tmp_path, caplog):
    root = _copy(a2d_root, tmp_path)
    gone, missed = videos[0].name, videos[1].name
    shutil.rmtree(root / a2d.INSTANCES_DIR / gone)
    (root / a2d.MISSED).write_text(f"{missed}\n")
    with caplog.at_level(logging.WARNING, logger="datamodules.a2d_sentences"):
        ds = A2DSentences(root, "train", num_frames=2, input_size=16)
    assert list(ds.missing) == [gone] and str(root / a2d.INSTANCES_DIR / gone) in ds.missing[gone]
    assert {s.video for s in ds.samples} == {v.name for v in videos[2:]} - {videos[3].name}
    assert "1 video(s) or queries without masks" in caplog.text


def test_a2d_h5_without_the_referred_instance(a2d_root, tmp_path):
    root = _copy(a2d_root, tmp_path)
    strict = A2DSentences(root, "train", num_frames=2, input_size=16)
    lenient = A2DSentences(root, "train", num_frames=2, input_size=16, on_error="skip")
    k = next(i for i, s in enumerate(strict.samples) if s.instance == 0)
    s = strict.samples[k]
    h5 = root / a2d.INSTANCES_DIR / s.video / f"{s.frame:05d}.h5"
    ann = read_frame_annotation(h5)
    keep = [j for j, i in enumerate(ann.instances) if i != s.instance]
    write_frame_annotation(h5, [ann.instances[j] for j in keep], ann.masks[keep], ann.boxes[keep])
    with one_line(f"{h5}: no instance {s.instance}"):
        strict[k]
    item = lenient[k]  # the next sample instead, counted
    assert item["index"] == k + 1 and list(lenient.skipped) == [k] and str(h5) in lenient.skipped[k]
    h5.unlink()  # the whole file gone: every sample of that frame fails
    with one_line(f"{h5}: annotation file not found"):
        strict[k]


def test_a2d_h5_unreadable_or_without_datasets(tmp_path):
    path = tmp_path / "00003.h5"
    path.write_bytes(b"not hdf5 at all")
    with one_line(f"{path}: cannot read A2D annotation"):
        read_frame_annotation(path)
    with h5py.File(path, "w") as f:
        f["instance"] = np.array([1.0, 2.0])
    with one_line(f"{path}: no reMask dataset"):
        read_frame_annotation(path)
    with h5py.File(path, "w") as f:
        f["instance"] = np.array([1.0, 2.0])
        f["reMask"] = np.zeros((3, 7, 5))
    with one_line(f"{path}: reMask has shape (3, 7, 5) for 2 instance(s)"):
        read_frame_annotation(path)


def test_a2d_missing_video_file(a2d_root, tmp_path):
    root = _copy(a2d_root, tmp_path)
    strict = A2DSentences(root, "test", num_frames=2, input_size=16)
    lenient = A2DSentences(root, "test", num_frames=2, input_size=16, on_error="skip")
    mp4 = strict.video_path(strict.samples[0].video)
    mp4.unlink()
    with one_line(f"{mp4}: video not found", VideoReadError):
        strict[0]
    with one_line("every sample failed to load", VideoReadError):  # the test subset is that one video
        lenient[0]
    assert len(lenient.skipped) == len(lenient)


def test_jhmdb_mat_with_fewer_frames_than_the_video(jhmdb_root, videos, tmp_path, caplog):
    root = _copy(jhmdb_root, tmp_path)
    v = videos[0]
    mat = root / jhmdb.MASKS_DIR / v.target.motion / v.name / jhmdb.MASK_FILE
    short = 10
    strict = JHMDBSentences(root, "three", num_frames=2, input_size=16)
    lenient = JHMDBSentences(root, "three", num_frames=2, input_size=16, on_error="skip")
    write_puppet_mask(mat, v.target.masks[:short])
    past = [k for k, s in enumerate(strict.samples) if s.video == v.name and s.frame > short]
    assert past == [2]  # frames 4, 8, 12
    for k, s in enumerate(strict.samples[:3]):
        if k in past:
            with one_line(f"{mat}: {short} mask frame(s), fewer than frame {s.frame}"):
                strict[k]
        else:
            assert np.array_equal(strict[k]["gt"].numpy(), v.target.masks[s.frame - 1])
    assert lenient[2]["index"] == 3 and list(lenient.skipped) == [2] and str(mat) in lenient.skipped[2]
    with caplog.at_level(logging.WARNING, logger="datamodules.jhmdb_sentences"):
        every = JHMDBSentences(root, "all", num_frames=2, input_size=16)
    assert [s.frame for s in every.samples if s.video == v.name] == list(range(1, short + 1))
    assert len(every) == short + T * (NUM_JHMDB - 1)
    assert f"{T - short} frame(s) past their video's puppet mask left out" in caplog.text


def test_jhmdb_bad_files(tmp_path):
    mat = tmp_path / "puppet_mask.mat"
    mat.write_bytes(b"garbage")
    with one_line(f"{mat}: cannot read puppet mask"):
        read_puppet_mask(mat)
    with one_line(f"{tmp_path / 'nope.mat'}: cannot read puppet mask"):
        read_puppet_mask(tmp_path / "nope.mat")
    meta = tmp_path / jhmdb.METADATA
    good = ["v", "./jhmdb_sentences/Rename_Images/run/v/00002.png", "./m.mat", 10, "a man running"]
    for bad, message in [
        (good[:4], "is not [video, frame path"),
        ([*good[:3], "ten", good[4]], "is not [video, frame path"),
        ([*good[:3], float("inf"), good[4]], "is not [video, frame path"),
        ([good[0], "00002.png", *good[2:]], "is not [video, frame path"),
        ([good[0], good[1].replace("00002", "00000"), *good[2:]], ": frame 0 is not in 1..10"),
        ([*good[:3], 1, good[4]], ": frame 2 is not in 1..1"),
    ]:
        meta.write_text(json.dumps([good, bad]))
        with one_line(f"{meta}: sample 1{'' if message.startswith(':') else ' '}{message}"):
            read_samples_metadata(meta)
    meta.write_text('[["v", "a",\n 3,, 4]]')
    with one_line(f"{meta}:2: invalid JSON"):
        read_samples_metadata(meta)
    annotation = tmp_path / jhmdb.ANNOTATION
    annotation.write_text("video_id,query\nv1,a man, running\nv2,\n")
    with one_line(f"{annotation}:3: expected video_id,query"):
        read_jhmdb_annotations(annotation)
    annotation.write_text('video_id,query\nv1,"a man\nv2,a dog\n')  # an unbalanced quote
    with one_line(f"{annotation}:2: a quoted field runs past the end of its line"):
        read_jhmdb_annotations(annotation)
    with one_line(f"{tmp_path / 'none.json'}: J-HMDB Sentences samples list not found"):
        JHMDBSentences(tmp_path, "three", metadata=tmp_path / "none.json")
    with one_line(f"{tmp_path / 'none' / jhmdb.ANNOTATION}: J-HMDB Sentences annotation not found"):
        JHMDBSentences(tmp_path / "none", "all")


def test_a2d_malformed_videoset(tmp_path, a2d_root):
    path = tmp_path / "videoset.csv"
    good = "vid1,11,0,3.5,240,320,80,3,0"
    for bad, message in [
        ("vid2,11,0,3.5,240,320,80,3", "expected 9 comma-separated fields, got 8"),
        ("vid2,11,0,3.5,240,abc,80,3,0", "fields 2-9 must be numbers"),
        ("vid2,11,0,3.5,240,inf,80,3,0", "fields 2-9 must be numbers"),
        ("vid2,11,0,3.5,240,nan,80,3,0", "fields 2-9 must be numbers"),
        ("vid2,11,0,3.5,240,320,80,3,2", "subset must be 0 (train) or 1 (test), not 2"),
    ]:
        path.write_text(f"{good}\n\n{bad}\n")
        with one_line(f"{path}:3: {message}"):
            read_videoset(path)
    path.write_text(f"{good}\n\n")
    assert read_videoset(path) == {"vid1": a2d.A2DVideo("vid1", 11, 240, 320, 80, 3, 0)}
    root = _copy(a2d_root, tmp_path)  # through the dataset
    videoset = root / a2d.VIDEOSET
    videoset.write_text(videoset.read_text() + "broken,1,2\n")
    with one_line(f"{videoset}:{NUM_VIDEOS + 1}: expected 9 comma-separated fields, got 3"):
        A2DSentences(root, "train")
    videoset.unlink()
    with one_line(f"{videoset}: A2D videoset.csv not found"):
        A2DSentences(root, "train")


def test_a2d_malformed_annotation(tmp_path):
    path = tmp_path / "a2d_annotation.txt"
    path.write_text("video_id,instance_id,query\nv, 0 , a man \n-x,\u00b2,a bird\nv,1 (copy),a dog\n\nv,2\n")
    with one_line(f"{path}:6: expected video_id,instance_id,query; got 2 field(s)"):
        read_annotations(path)
    path.write_text("video_id,instance_id,query\nv, 0 , a man \n-x,\u00b2,a bird\nv,1 (copy),a dog\n\nv,2,  \n")
    with one_line(f"{path}:6: empty query"):
        read_annotations(path)
    path.write_text("video_id,instance_id,query\nv, 0 , a man \n-x,\u00b2,a bird\nv,1 (copy),a dog\n")
    queries, dropped = read_annotations(path)
    assert queries == [Query("v", 0, "a man", 2)] and dropped == [(3, "\u00b2"), (4, "1 (copy)")]
    path.write_text('video_id,instance_id,query\n\nv,0,"a man\nv,1,a dog\n')  # an unbalanced quote
    with one_line(f"{path}:3: a quoted field runs past the end of its line"):
        read_annotations(path)
    path.write_text('video_id,instance_id,query\nv,0,"a man,\nin black"\nv,x,a dog\n')  # lines after a quoted one
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2: a quoted field")):
        read_annotations(path)


# --------------------------------------------------------------------------------------------- datamodule


def test_datamodule_train_batch_and_sentences(a2d_root, videos):
    dm = A2DSentencesDataModule(str(a2d_root), num_frames=4, input_size=32, batch_size=4, num_workers=0,
                                pin_memory=False)
    dm.setup("fit")
    assert dm.trainer is None
    loader = dm.train_dataloader()
    batch = next(iter(loader))
    assert batch["clip"].shape == (4, 3, 4, 32, 32) and batch["clip"].dtype == torch.uint8
    assert batch["mask"].shape == (4, 32, 32) and batch["mask"].dtype == torch.float32
    assert isinstance(batch["gt"], list) and len(batch["gt"]) == 4 and len(batch["sentence"]) == 4
    by_name = {v.name: v for v in videos}
    for gt, video, frame, instance, sentence in zip(batch["gt"], batch["video"], batch["frame"], batch["instance"],
                                                    batch["sentence"]):
        obj = by_name[video].objects[instance]
        assert np.array_equal(gt.numpy(), obj.masks[frame - 1]) and sentence == obj.sentence
    again = next(iter(dm.train_dataloader()))  # the seeded order and augmentation
    assert torch.equal(again["index"], batch["index"]) and torch.equal(again["clip"], batch["clip"])
    train = _expected_a2d_samples(videos, "train")
    assert sorted(dm.train_sentences()) == sorted(s.sentence for s in train)
    test_sentences = {s.sentence for s in _expected_a2d_samples(videos, "test")}
    assert test_sentences and len(dm.val_set) == len(_expected_a2d_samples(videos, "test"))
    val = next(iter(dm.val_dataloader()))
    assert val["clip"].shape[1:] == (3, 4, 32, 32) and set(val["sentence"]) <= test_sentences
