"""The synthetic generator and its writers: each format read back by that format's parser."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules import alov, otb, ucf101
from datamodules.synthetic import MOTIONS, PALETTE, SHAPES, SynthConfig, generate_video, generate_videos, synthesize
from datamodules.synthetic.writers import UCF_CLASSES, ucf_group, ucf_test_groups
from datamodules.video import open_video
from zoo.errors import DatasetError

CFG = SynthConfig(height=72, width=96, num_frames=16, min_size=6, max_size=12)


def test_generator_is_deterministic_and_indexed():
    a, b = generate_video(3, 5, CFG), generate_video(3, 5, CFG)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.target.boxes, b.target.boxes)
    assert not np.array_equal(a.frames, generate_video(4, 5, CFG).frames)
    # video i is the same whatever the number of videos asked for
    np.testing.assert_array_equal(list(generate_videos(3, 3, CFG))[2].frames, generate_video(3, 2, CFG).frames)


def test_annotations_match_the_pixels():
    for i in range(6):
        video = generate_video(0, i, CFG)
        assert 2 <= len(video.objects) <= 4
        assert video.target.visible.all(), "the target stays in view"
        for obj in video.objects:
            assert obj.shape in SHAPES and obj.colour in PALETTE and obj.motion in MOTIONS
            assert obj.sentence.startswith("the ") and obj.colour in obj.sentence and obj.shape in obj.sentence
            for t in np.flatnonzero(obj.visible):
                x, y, w, h = obj.boxes[t].astype(int)
                mask = obj.masks[t]
                assert 0 <= x and 0 <= y and x + w <= CFG.width and y + h <= CFG.height
                ys, xs = np.nonzero(mask)
                if len(xs):  # the visible pixels lie in the box
                    assert xs.min() >= x and xs.max() < x + w and ys.min() >= y and ys.max() < y + h
            assert not obj.masks[~obj.visible].any()


def test_masks_do_not_overlap_and_occlusions_happen():
    occluded = 0
    for i in range(10):
        video = generate_video(1, i, CFG)
        stack = np.stack([o.masks for o in video.objects]).sum(0)
        assert stack.max() <= 1
        for obj in video.objects:
            x, y, w, h = np.nan_to_num(obj.boxes[obj.visible]).T
            area = obj.masks[obj.visible].sum((1, 2))
            occluded += int((area < 0.3 * w * h).sum())
    assert occluded > 0


def test_motions_differ():
    """Still objects do not move, growing ones grow, linear ones travel."""
    by_motion = {}
    for i in range(len(MOTIONS)):
        video = generate_video(2, i, CFG, target_motion=MOTIONS[i])
        by_motion[MOTIONS[i]] = video.target.boxes
    still = by_motion["still"]
    assert np.ptp(still, axis=0).max() == 0
    assert by_motion["growing"][-1, 2] > by_motion["growing"][0, 2]
    assert by_motion["shrinking"][-1, 2] < by_motion["shrinking"][0, 2]
    travel = np.abs(by_motion["linear"][-1, :2] - by_motion["linear"][0, :2]).max()
    assert travel > 5


def test_otb_writer_round_trip(tmp_path):
    out = synthesize("otb", tmp_path / "otb", num_videos=3, seed=7, cfg=CFG)
    names = otb.list_sequences(out)
    assert names == ["Synth0000", "Synth0001", "Synth0002"]
    for i, name in enumerate(names):
        seq = otb.load_sequence(out / name)
        expected = generate_video(7, i, CFG)
        assert len(seq) == CFG.num_frames and seq.frames[0].name == "0001.jpg"
        np.testing.assert_array_equal(seq.boxes, expected.target.boxes)
        frames = open_video(out / name / "img").get_frames([0, CFG.num_frames - 1])
        assert np.abs(frames.astype(int) - expected.frames[[0, -1]]).mean() < 4  # JPEG


def test_alov_writer_round_trip(tmp_path):
    out = synthesize("alov", tmp_path / "alov", num_videos=4, seed=5, cfg=CFG)
    videos = alov.list_videos(out)
    assert len(videos) == 4
    expected = {}
    for i in range(4):
        v = generate_video(5, i, CFG)
        expected.setdefault(f"{v.label + 1:02d}-{UCF_CLASSES[v.label]}", []).append(v)
    for video in videos:
        truth = expected[video.category].pop(0)
        assert video.name.startswith(f"{video.category}_video")
        frames = sorted(video.boxes)
        assert frames == list(range(1, CFG.num_frames + 1, 5))
        for f in frames:
            np.testing.assert_allclose(video.boxes[f], truth.target.boxes[f - 1], atol=1e-9)
            assert video.frame_path(f).is_file()


def test_ucf101_writer_round_trip(tmp_path):
    n = 21
    out = synthesize("ucf101", tmp_path / "ucf", num_videos=n, seed=2, cfg=CFG)
    assert ucf101.read_class_index(out / "ucfTrainTestlist" / "classInd.txt") == list(UCF_CLASSES)
    assert (out / "ucfTrainTestlist" / "trainlist01.txt").read_bytes().count(b"\r\n") > 0
    for split in (1, 2, 3):
        train = ucf101.read_split(out / "ucfTrainTestlist", split, train=True)
        test = ucf101.read_split(out / "ucfTrainTestlist", split, train=False)
        assert len(train) + len(test) == n and not {r for r, _ in train} & {r for r, _ in test}
        for rel, label in train + test:
            cls, name = rel.split("/")
            assert UCF_CLASSES[label] == cls and name.startswith(f"v_{cls}_g")
            group = int(name.split("_g")[1][:2])
            assert (group in ucf_test_groups(split)) == ((rel, label) in test)
            assert (out / rel).is_file()
    # labels are the generator's: video i has motion i % 7, j-th of its class in group ucf_group(j, 3)
    lists = out / "ucfTrainTestlist"
    train1 = dict(ucf101.read_split(lists, 1, True) + ucf101.read_split(lists, 1, False))
    for i in range(n):
        label, j = i % len(MOTIONS), i // len(MOTIONS)
        cls = UCF_CLASSES[label]
        rel = f"{cls}/v_{cls}_g{ucf_group(j, n // len(MOTIONS)):02d}_c01.avi"
        assert train1[rel] == label
    video = open_video(out / train[0][0])
    assert len(video) == CFG.num_frames and video.get_frames([0]).shape == (1, CFG.height, CFG.width, 3)


def test_synthesize_refuses_to_overwrite(tmp_path):
    out = synthesize("otb", tmp_path / "otb", num_videos=1, seed=0, cfg=CFG)
    with pytest.raises(DatasetError, match="not empty"):
        synthesize("otb", out, num_videos=1, seed=0, cfg=CFG)
    with pytest.raises(DatasetError, match="unknown synthetic format"):
        synthesize("kinetics", tmp_path / "k", num_videos=1)
    assert [p.name for p in tmp_path.iterdir()] == ["otb"], "no partial folders left behind"


def test_otb99lang_sentences_single_out_the_target_among_look_alikes():
    from datamodules.synthetic.generator import referring_sentence

    cfg = SynthConfig(height=96, width=128, num_frames=4, min_size=8, max_size=14)
    checked = 0
    for i in range(40):
        video = generate_video(5, i, cfg)
        target = video.target
        alike = [o for o in video.objects[1:] if o.visible[0] and (o.colour, o.shape) == (target.colour, target.shape)]
        sentence = referring_sentence(video)
        if not alike:
            assert sentence == target.sentence
            continue
        checked += 1
        x = target.boxes[0, 0] + target.boxes[0, 2] / 2
        others = [o.boxes[0, 0] + o.boxes[0, 2] / 2 for o in alike]
        assert sentence.startswith(target.sentence + " ")
        if sentence.endswith("on the left"):
            assert x < min(others)
        if sentence.endswith("on the right"):
            assert x > max(others)
    assert checked >= 5


def test_appearance_change_is_optional_and_changes_colours_and_light():
    plain = generate_video(3, 1, SynthConfig(num_frames=12))
    changed = generate_video(3, 1, SynthConfig(num_frames=12, appearance_change=0.8))
    for a, b in zip(plain.objects, changed.objects):
        np.testing.assert_array_equal(a.boxes, b.boxes)  # the same motion and boxes
    brightness = changed.frames.reshape(12, -1).mean(1) / plain.frames.reshape(12, -1).mean(1)
    assert brightness.max() - brightness.min() > 0.2  # the light changes over the video
