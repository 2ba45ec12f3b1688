"""Synthetic action tubes (``generate_tube_video``) and their UCF101-24 / ACT writers, read back by the loaders."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest

from datamodules.action_tubes import read_act_gt, read_pyannot
from datamodules.synthetic import TUBE_CLASSES, TUBE_FORMATS, SynthConfig, generate_tube_video, generate_videos
from datamodules.synthetic.writers import write_act, write_ucf101_24
from zoo.cli import main

CFG = SynthConfig(height=64, width=80, num_frames=32, min_size=5, max_size=10)


def tube_videos(n: int, seed: int = 0, **options) -> list:
    return [generate_tube_video(seed, i, CFG, label=i % len(TUBE_CLASSES), **options) for i in range(n)]


def assert_same_tubes(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(sorted(got, key=lambda t: t.start), sorted(want, key=lambda t: t.start)):
        assert g.label == w.label
        np.testing.assert_array_equal(g.boxes, w.boxes)


def test_deterministic_per_seed_and_index():
    a, b = generate_tube_video(3, 4, CFG), generate_tube_video(3, 4, CFG)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.spans == b.spans and a.label == b.label
    assert_same_tubes(a.tubes(), b.tubes())
    assert not np.array_equal(a.frames, generate_tube_video(3, 5, CFG).frames)
    assert not np.array_equal(a.frames, generate_tube_video(4, 4, CFG).frames)
    # video i is the same whatever the number of videos asked for
    opts = TUBE_FORMATS["ucf101-24"]
    third = list(generate_videos(3, 3, CFG, tubes=opts))[2]
    np.testing.assert_array_equal(third.frames, generate_tube_video(3, 2, CFG, label=2, **opts).frames)


def test_tubes_start_and_end_inside_the_video_and_match_the_pixels():
    T, counts = CFG.num_frames, Counter()
    for video in tube_videos(12, seed=1):
        assert 1 <= len(video.objects) <= 2
        counts[len(video.objects)] += 1
        for k, (obj, tube) in enumerate(zip(video.objects, video.tubes())):
            first, last = video.spans[k]
            assert 1 < first < last < T, "absent before and after its tube"
            assert tube.label == video.label == TUBE_CLASSES.index(obj.motion)  # all actors do the video's action
            np.testing.assert_array_equal(tube.frames, np.arange(first, last + 1))
            np.testing.assert_array_equal(np.flatnonzero(obj.visible) + 1, tube.frames)
            assert not obj.masks[~obj.visible].any()
            x1, y1, x2, y2 = tube.boxes[:, 1:].T
            assert x1.min() >= 0 and y1.min() >= 0 and x2.max() <= CFG.width and y2.max() <= CFG.height
            assert (x2 > x1).all() and (y2 > y1).all()
            for row in tube.boxes:  # the visible pixels lie inside the box (x2 = x + w: exclusive)
                ys, xs = np.nonzero(obj.masks[int(row[0]) - 1])
                if len(xs):
                    assert xs.min() >= row[1] and xs.max() < row[3] and ys.min() >= row[2] and ys.max() < row[4]
    assert counts[1] and counts[2], "one or two actors"


def test_trimmed_tubes_cover_the_video():
    for video in tube_videos(4, seed=2, trimmed=True, actors=(1, 1)):
        assert video.spans == [(1, CFG.num_frames)] and video.objects[0].visible.all()


def test_actors_occlude_each_other():
    occluded = 0
    for video in tube_videos(24, seed=3, actors=(2, 2)):
        a, b = video.objects
        assert not (a.masks & b.masks).any()
        for obj in (a, b):
            x, y, w, h = obj.boxes[obj.visible].T
            occluded += int((obj.masks[obj.visible].sum((1, 2)) < 0.5 * w * h).sum())
    assert occluded > 0


def test_the_look_does_not_depend_on_the_class():
    """Forcing another class changes the motion only: shapes, colours, sizes and spans stay, and across videos
    every class is seen in many looks."""
    for index in range(3):
        videos = [generate_tube_video(5, index, CFG, label=c) for c in TUBE_CLASSES]
        looks = {tuple((o.shape, o.colour) for o in v.objects) for v in videos}
        assert len(looks) == 1
        assert len({tuple(v.spans) for v in videos}) == 1
        assert [v.objects[0].motion for v in videos] == list(TUBE_CLASSES)
    looks_of = {c: set() for c in TUBE_CLASSES}
    for video in tube_videos(36, seed=6):
        for obj in video.objects:
            looks_of[obj.motion].add((obj.shape, obj.colour))
    assert all(len(s) >= 4 for s in looks_of.values()), looks_of


def classify_motion(boxes: np.ndarray) -> str:
    """A hand-written classifier of a tube's motion from its boxes alone (rows frame, x1, y1, x2, y2)."""
    c = np.stack([(boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 2] + boxes[:, 4]) / 2], 1)
    w = boxes[:, 3] - boxes[:, 1]
    if w[-1] - w[0] >= 3:
        return "growing"
    if w[-1] - w[0] <= -3:
        return "shrinking"
    t = np.arange(len(c))
    if max(np.abs(np.polyval(np.polyfit(t, c[:, i], 1), t) - c[:, i]).max() for i in range(2)) < 1.5:
        return "linear"
    a, b, k = np.linalg.lstsq(np.c_[2 * c, np.ones(len(c))], (c**2).sum(1), rcond=None)[0]  # circle fit
    if np.abs(np.hypot(c[:, 0] - a, c[:, 1] - b) - np.sqrt(k + a * a + b * b)).max() < 1.5:
        return "circular"
    v = np.sign(np.diff(c, axis=0))
    for axis, (lo, hi, size) in enumerate(((1, 3, CFG.width), (2, 4, CFG.height))):
        for j in range(1, len(v)):  # a turn away from the image border: only a zig-zag does that
            if v[j, axis] * v[j - 1, axis] < 0 and boxes[j, lo] > 1 and boxes[j, hi] < size - 1:
                return "zigzag"
    return "bouncing"


def test_the_class_is_told_by_motion_not_by_one_frame():
    videos = tube_videos(42, seed=7)
    truth = [video.objects[k].motion for video in videos for k in range(len(video.objects))]
    by_motion = [classify_motion(t.boxes) for video in videos for t in video.tubes()]
    assert np.mean([a == b for a, b in zip(truth, by_motion)]) >= 0.95
    # the best guess from one frame's look (shape and colour), learnt on other videos, is near chance (1/6)
    votes: dict[tuple[str, str], Counter] = {}
    for video in tube_videos(60, seed=8):
        for obj in video.objects:
            votes.setdefault((obj.shape, obj.colour), Counter())[obj.motion] += 1
    guess = [votes.get((o.shape, o.colour), Counter({"linear": 1})).most_common(1)[0][0]
             for video in videos for o in video.objects]
    assert np.mean([a == b for a, b in zip(truth, guess)]) < 0.4


def read_rgb(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image[..., ::-1]


def test_ucf101_24_round_trip(tmp_path):
    videos = tube_videos(7, seed=9)
    names = write_ucf101_24(videos, tmp_path)
    split = tmp_path / "splitfiles"
    classes = (split / "classes.txt").read_text().split()
    assert classes == list(TUBE_CLASSES)
    ann = read_pyannot(split / "pyannot.pkl", split / "trainlist01.txt", split / "testlist01.txt", classes=classes,
                       resolution=(CFG.height, CFG.width))
    assert sorted(ann.videos) == sorted(names) and ann.classes == list(TUBE_CLASSES)
    train, test = ann.splits[1]
    assert sorted(train + test) == sorted(names) and train and test
    for name in test:  # UCF101's split 1 tests groups 1-7
        assert 1 <= int(name.split("_g")[1][:2]) <= 7
    for video, name in zip(videos, names):
        cls = TUBE_CLASSES[video.label]
        assert name.startswith(f"{cls}/v_{cls}_g")
        got = ann.videos[name]
        assert (got.num_frames, got.label) == (CFG.num_frames, video.label)
        assert_same_tubes(got.tubes, video.tubes())
        rgb = sorted((tmp_path / "rgb-images" / name).iterdir())
        flow = sorted((tmp_path / "fastOF-images" / name).iterdir())
        assert [p.name for p in rgb] == [p.name for p in flow] == [f"{t:05d}.jpg" for t in range(1, CFG.num_frames + 1)]
        assert np.abs(read_rgb(rgb[5]).astype(int) - video.frames[5]).mean() < 4  # JPEG, RGB order kept
        assert read_rgb(flow[0]).shape == (CFG.height, CFG.width, 3)


@pytest.mark.parametrize("dataset, ext, num_splits", [("jhmdb", "png", 3), ("ucfsports", "jpg", 1)])
def test_act_round_trip(tmp_path, dataset, ext, num_splits):
    videos = tube_videos(7, seed=10, **TUBE_FORMATS[dataset])
    names = write_act(videos, tmp_path, dataset)
    ann = read_act_gt(tmp_path / ("JHMDB-GT.pkl" if dataset == "jhmdb" else "UCFSports-GT.pkl"))
    assert ann.dataset == dataset and ann.classes == list(TUBE_CLASSES) and sorted(ann.videos) == sorted(names)
    assert sorted(ann.splits) == list(range(1, num_splits + 1))
    tested = Counter()
    for train, test in ann.splits.values():
        assert sorted(train + test) == sorted(names) and train and test
        tested.update(test)
    if num_splits == 3:
        assert set(tested.values()) == {1}, "every video is tested in exactly one of the three splits"
    for video, name in zip(videos, names):
        assert name == f"{TUBE_CLASSES[video.label]}/{video.name}"
        got = ann.videos[name]
        assert (got.num_frames, got.resolution, got.label) == (CFG.num_frames, (CFG.height, CFG.width), video.label)
        assert_same_tubes(got.tubes, video.tubes())
        assert [t.start for t in got.tubes] == [1] * len(got.tubes), "trimmed"
        frames = sorted((tmp_path / "Frames" / name).iterdir())
        assert [p.name for p in frames] == [f"{t:05d}.{ext}" for t in range(1, CFG.num_frames + 1)]
        if ext == "png":
            np.testing.assert_array_equal(read_rgb(frames[3]), video.frames[3])
        assert len(list((tmp_path / "FlowBrox04" / name).glob("*.jpg"))) == CFG.num_frames


def test_zoo_synth_ucf101_24(tmp_path, capsys):
    out = tmp_path / "ucf24"
    assert main(["synth", "--format", "ucf101-24", "--out", str(out), "--videos", "3", "--frames", "20",
                 "--size", "64x80", "--seed", "4"]) == 0
    assert "ucf101-24" in capsys.readouterr().out
    ann = read_pyannot(out / "splitfiles" / "pyannot.pkl", classes=TUBE_CLASSES)
    cfg = SynthConfig(height=64, width=80, num_frames=20)
    assert len(ann.videos) == 3
    for i, name in enumerate(sorted(ann.videos, key=lambda n: ann.videos[n].label)):
        video = generate_tube_video(4, i, cfg, label=i, **TUBE_FORMATS["ucf101-24"])
        assert name.startswith(f"{TUBE_CLASSES[i]}/")
        assert_same_tubes(ann.videos[name].tubes, video.tubes())
