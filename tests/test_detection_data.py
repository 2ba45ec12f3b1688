"""Detection datamodules (UCF101-24, J-HMDB, UCF-Sports) on tiny hand-written layouts, and the SSD transforms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datamodules.action_tubes import (
    UCF24_CLASSES,
    Tube,
    TubeAnnotations,
    VideoTubes,
    write_act_gt,
    write_pyannot,
    write_split_list,
)
from datamodules.detection_frames import (
    DetectionFrames,
    FrameLayout,
    all_frames,
    sampled_frames,
)
from datamodules.jhmdb import JHMDBDataModule, jhmdb_annotations_from_splits
from datamodules.ssd_transforms import FlowMirror, SSDAugmentation, SSDResize
from datamodules.ucf101_24 import UCF101_24DataModule
from datamodules.ucf_sports import UCFSportsDataModule
from zoo.errors import VideoReadError

H, W = 32, 40


def _tube(label, frames, box):
    return Tube(label, np.array([[f, *box] for f in frames], dtype=np.float64))


def _ann(dataset="ucf101-24", classes=UCF24_CLASSES):
    videos = {
        "Basketball/v_a": VideoTubes("Basketball/v_a", 6, (H, W), 0, [_tube(0, range(2, 6), (4, 5, 20, 25))]),
        "BasketballDunk/v_b": VideoTubes("BasketballDunk/v_b", 6, (H, W), 1, [
            _tube(1, range(1, 7), (2, 2, 12, 30)), _tube(1, range(3, 5), (22, 3, 38, 20))]),
        "Basketball/v_c": VideoTubes("Basketball/v_c", 5, (H, W), 0, [_tube(0, range(1, 4), (10, 10, 30, 30))]),
    }
    splits = {1: (["Basketball/v_a", "BasketballDunk/v_b"], ["Basketball/v_c"])}
    return TubeAnnotations(dataset, list(classes), videos, splits)


def _write_frames(layout: FrameLayout, ann: TubeAnnotations, flow: bool = True) -> None:
    rng = np.random.default_rng(0)
    for name, v in ann.videos.items():
        for f in range(1, v.num_frames + 1):
            for path in [layout.frame_path(name, f)] + ([layout.flow_path(name, f)] if flow else []):
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))


@pytest.fixture
def ucf_root(tmp_path):
    ann = _ann()
    write_pyannot(ann, tmp_path / "splitfiles" / "pyannot.pkl")
    write_split_list(ann.train_videos(), tmp_path / "splitfiles" / "trainlist01.txt")
    write_split_list(ann.test_videos(), tmp_path / "splitfiles" / "testlist01.txt")
    _write_frames(FrameLayout(tmp_path, "rgb-images", "jpg", "fastOF-images", "jpg"), ann)
    return tmp_path


def test_road_sampling_hand_computed():
    ann = _ann()
    ratios = [1.03, 0.75] + [1.0] * 22
    # label 0, ratio 1.03, numf 6: indices int(0, 1.03, 2.06, 3.09, 4.12) = 0..4 -> frames 1..5, boxes on 2..5
    assert [s.frame for s in sampled_frames(ann, ["Basketball/v_a"], ratios)] == [2, 3, 4, 5]
    # label 1, ratio 0.75: int(0, .75, 1.5, 2.25, 3, 3.75, 4.5) = 0,0,1,2,3,3,4 -> frames 1,1,2,3,4,4,5 (ROAD repeats)
    b = sampled_frames(ann, ["BasketballDunk/v_b"], ratios)
    assert [s.frame for s in b] == [1, 1, 2, 3, 4, 4, 5]
    assert [len(s.labels) for s in b] == [1, 1, 1, 2, 2, 2, 1]
    # ROAD's test subset: step max(1, 1.03) * 3 = 3.09 -> indices 0, 3 -> frames 1, 4 (v_c has boxes on 1..3)
    assert [s.frame for s in sampled_frames(ann, ["Basketball/v_c"], ratios, factor=3)] == [1]
    assert [s.frame for s in sampled_frames(ann, ["Basketball/v_a"], None)] == [2, 3, 4, 5]
    frames = all_frames(ann, ["Basketball/v_c"])
    assert [s.frame for s in frames] == [1, 2, 3, 4, 5] and [len(s.boxes) for s in frames] == [1, 1, 1, 0, 0]
    np.testing.assert_array_equal(b[3].boxes, [[2, 2, 12, 30], [22, 3, 38, 20]])


def test_ucf101_24_datamodule_batch(ucf_root):
    dm = UCF101_24DataModule(str(ucf_root), inputs="rgb+flow", flow_dir="fastOF-images", input_size=64,
                             batch_size=4, num_workers=0, pin_memory=False)
    dm.setup("fit")
    # ROAD ratios: class 0 step 1.03 -> v_a frames 2..5; class 1 step 0.75 -> v_b frames 1,1,2,3,4,4,5
    assert len(dm.train_set) == 4 + 7 and len(dm.val_set) == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["rgb"].shape == (4, 3, 64, 64) and batch["flow"].shape == (4, 3, 64, 64)
    assert batch["rgb"].dtype == torch.float32 and len(batch["boxes"]) == 4
    for boxes, labels in zip(batch["boxes"], batch["labels"]):
        assert len(boxes) == len(labels) >= 1
        assert boxes.min() >= 0 and boxes.max() <= 64 and bool((boxes[:, 2:] > boxes[:, :2]).all())
        assert set(labels.tolist()) <= {0, 1}
    dm.setup("test")
    item = dm.test_set[0]
    assert (item["video"], item["frame"], item["size"]) == ("Basketball/v_c", 1, (H, W))
    # test: resize only, boxes scaled by 64/40 and 64/32
    np.testing.assert_allclose(item["boxes"].numpy(), [[16, 20, 48, 60]])
    assert len(dm.test_set) == 5


def test_missing_frame_named_and_skipped(ucf_root):
    missing = ucf_root / "rgb-images" / "Basketball" / "v_a" / "00003.jpg"
    missing.unlink()
    dm = UCF101_24DataModule(str(ucf_root), ratios=None, input_size=32, num_workers=0)
    dm.setup("fit")
    index = [(s.video, s.frame) for s in dm.train_set.samples].index(("Basketball/v_a", 3))
    with pytest.raises(VideoReadError) as e:
        dm.train_set[index]
    assert str(e.value) == f"{missing}: frame image not found"
    dm = UCF101_24DataModule(str(ucf_root), ratios=None, input_size=32, num_workers=0, on_error="skip")
    dm.setup("fit")
    item = dm.train_set[index]
    assert item["frame"] == 4 and len(dm.train_set.skipped) == 1


def test_act_layouts(tmp_path):
    ann = _ann("jhmdb", ["a", "b"])
    ann.splits = {1: (["Basketball/v_a"], ["BasketballDunk/v_b", "Basketball/v_c"]),
                  2: (["BasketballDunk/v_b"], ["Basketball/v_a", "Basketball/v_c"]),
                  3: (["Basketball/v_c"], ["Basketball/v_a", "BasketballDunk/v_b"])}
    write_act_gt(ann, tmp_path / "jhmdb" / "JHMDB-GT.pkl")
    _write_frames(FrameLayout(tmp_path / "jhmdb", "Frames", "png", "FlowBrox04", "jpg"), ann)
    dm = JHMDBDataModule(str(tmp_path / "jhmdb"), split=2, inputs="flow", input_size=48, batch_size=2,
                         num_workers=0, pin_memory=False)
    dm.setup("fit")
    assert [(s.video, s.frame) for s in dm.train_set.samples] == [("BasketballDunk/v_b", f) for f in range(1, 7)]
    batch = next(iter(dm.train_dataloader()))
    assert batch["flow"].shape == (2, 3, 48, 48) and "rgb" not in batch
    write_act_gt(ann, tmp_path / "sports" / "UCFSports-GT.pkl")
    _write_frames(FrameLayout(tmp_path / "sports", "Frames", "jpg"), ann, flow=False)
    dm = UCFSportsDataModule(str(tmp_path / "sports"), split=3, input_size=48, num_workers=0)
    dm.setup("test")
    assert len(dm.test_set) == 12 and dm.test_set[0]["rgb"].shape == (3, 48, 48)
    frames = DetectionFrames(dm.layout(), all_frames(dm.ann, ["Basketball/v_c"]), SSDResize(16))
    assert len(frames) == 5 and frames[4]["frame"] == 5 and frames[4]["rgb"].shape == (3, 16, 16)


def test_jhmdb_from_split_files(tmp_path):
    for k in (1, 2, 3):
        (tmp_path / "splits" / f"clap_test_split{k}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "splits" / f"clap_test_split{k}.txt").write_text(f"x.avi {1 if k < 3 else 2}\ny.avi 2\n")
    layout = FrameLayout(tmp_path / "root", "Frames", "png")
    for video, n in (("clap/x", 3), ("clap/y", 2)):
        for f in range(1, n + 1):
            layout.frame_path(video, f).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(layout.frame_path(video, f)), np.zeros((24, 30, 3), np.uint8))
    ann = jhmdb_annotations_from_splits(tmp_path / "splits", layout)
    assert ann.splits == {1: (["clap/x"], ["clap/y"]), 2: (["clap/x"], ["clap/y"]), 3: ([], ["clap/x", "clap/y"])}
    assert ann.videos["clap/x"].num_frames == 3 and ann.videos["clap/y"].resolution == (24, 30)
    dm = JHMDBDataModule(str(tmp_path / "root"), split=3, split_dir=str(tmp_path / "splits"), num_workers=0)
    dm.setup("test")
    assert [(s.video, s.frame) for s in dm.test_set.samples] == [("clap/x", 1), ("clap/x", 2), ("clap/x", 3),
                                                                   ("clap/y", 1), ("clap/y", 2)]


# ------------------------------------------------------------------------------------------------------ transforms
def _scene():
    """An RGB frame and a flow image with the same 12 x 10 rectangle: RGB 255 on 0, flow x = 200, y = 60 on 128."""
    rgb = torch.zeros(3, H, W)
    flow = torch.full((3, H, W), 128.0)
    rgb[:, 8:18, 10:22] = 255.0
    flow[0, 8:18, 10:22] = 200.0
    flow[1, 8:18, 10:22] = 60.0
    return rgb, flow, [[10, 8, 22, 18]], [3]


def test_rgb_flow_boxes_stay_aligned():
    rgb, flow, boxes, labels = _scene()
    aug = SSDAugmentation(size=64, photometric=False)
    kept = 0
    for seed in range(40):
        torch.manual_seed(seed)
        r, f, b, lab = aug(rgb, flow, boxes, labels)
        assert r.shape == f.shape == (3, 64, 64)
        # the same geometric transform: the rectangle's share of each pixel is the same in both images
        in_rgb = r[0] / 255.0 > 0.5
        in_flow = (128.0 - f[1]) / 68.0 > 0.5
        assert torch.equal(in_rgb, in_flow), seed
        assert len(b) == len(lab) and b.min() >= 0 and b.max() <= 64
        if len(b):
            kept += 1
            assert lab.tolist() == [3]
            ys, xs = torch.nonzero(in_rgb, as_tuple=True)
            # the box follows the content: it bounds the rectangle's pixels (to a pixel of resampling)
            assert abs(xs.min() - b[0, 0]) <= 1.5 and abs(xs.max() + 1 - b[0, 2]) <= 1.5, (seed, b)
            assert abs(ys.min() - b[0, 1]) <= 1.5 and abs(ys.max() + 1 - b[0, 3]) <= 1.5, (seed, b)
    assert kept > 20


def test_flip_negates_x_flow():
    rgb, flow, boxes, labels = _scene()
    aug = SSDAugmentation(size=W, photometric=False, expand=False, crop=False)
    flips = 0
    for seed in range(12):
        torch.manual_seed(seed)
        r, f, b, _ = aug(rgb, flow, boxes, labels)
        flipped = bool(b[0, 0] == W - 22)
        flips += flipped
        # resized to (40, 40) from (32, 40): x is untouched, so the values inside the rectangle are exact
        assert b[0, 0] in (10, W - 22)
        inside = f[:, 12, int(b[0, 0]) + 2]
        assert inside.tolist() == ([256 - 200, 60, 128] if flipped else [200, 60, 128])  # x -> 2 * 128 - x
        assert f[0, 0, 0] == 128
        assert torch.equal(r[0] / 255.0 > 0.5, (128.0 - f[1]) / 68.0 > 0.5)
    assert 0 < flips < 12
    no_negation = SSDAugmentation(size=W, photometric=False, expand=False, crop=False, negate_flow_x=False)
    torch.manual_seed(0)
    for _ in range(8):
        _, f, b, _ = no_negation(rgb, flow, boxes, labels)
        assert f[0, 12, int(b[0, 0]) + 2] == 200  # Two-in-One's mirror: the flow values stay


def test_crop_drops_boxes_with_their_labels():
    """Two boxes at opposite corners: crops keeping one box's centre only must drop the other's label too."""
    img = torch.zeros(3, 100, 100)
    boxes, labels = [[0, 0, 20, 20], [80, 80, 100, 100]], [5, 7]
    aug = SSDAugmentation(size=50, photometric=False, expand=False, mirror=False)
    seen = set()
    for seed in range(60):
        torch.manual_seed(seed)
        _, _, b, lab = aug(img, None, boxes, labels)
        assert len(b) == len(lab) >= 1
        seen.add(tuple(lab.tolist()))
        for box in b.tolist():
            assert 0 <= box[0] < box[2] <= 50 and 0 <= box[1] < box[3] <= 50
        if len(lab) == 2:  # labels stay with their boxes: 5 is the top-left one
            assert lab.tolist() == [5, 7] and b[0, 0] < b[1, 0] and b[0, 1] < b[1, 1]
    assert (5,) in seen or (7,) in seen
    assert (5, 7) in seen


def test_photometric_only_touches_rgb():
    rgb, flow, boxes, labels = _scene()
    aug = SSDAugmentation(size=W, expand=False, crop=False, mirror=False)
    changed = 0
    for seed in range(6):
        torch.manual_seed(seed)
        r, f, _, _ = aug(rgb, flow, boxes, labels)
        changed += not torch.allclose(r, torch.nn.functional.interpolate(rgb[None], (W, W), mode="bilinear")[0])
        assert torch.equal(f, torch.nn.functional.interpolate(flow[None], (W, W), mode="bilinear")[0])
    assert changed >= 4


def test_resize_and_mirror_units():
    r, f, b, lab = SSDResize(20)(torch.zeros(3, 10, 40), None, [[4, 2, 8, 6]], [1])
    assert f is None and r.shape == (3, 20, 20) and b.tolist() == [[2, 4, 4, 12]]
    flow = torch.full((1, 3, 4, 4), 100.0).squeeze(0)
    flow[0, 0, 0] = 0.0  # x flow at -bound or below: negated it is +bound, 256 clipped to 255
    mirror = FlowMirror(p=1.0, flow_x_index=0, flow_centre=128.0)
    from torchvision import tv_tensors

    out = mirror(tv_tensors.Image(flow))
    # column 0 moves to column 3 and its x value 0 becomes 255; x 100 becomes 156; y and magnitude stay
    assert out[0, 0, 3] == 255 and out[0, 0, 0] == 156 and out[1, 0, 0] == 100 and out[2, 1, 1] == 100


def test_frames_dataset_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="inputs must be one of"):
        DetectionFrames(FrameLayout(tmp_path), [], inputs="depth")
    (tmp_path / "rgb-images" / "v").mkdir(parents=True)
    (tmp_path / "rgb-images" / "v" / "00001.jpg").write_bytes(b"not a jpeg")
    ann = TubeAnnotations("x", ["a"], {"v": VideoTubes("v", 1, (H, W), 0, [])}, {1: ([], ["v"])})
    ds = DetectionFrames(FrameLayout(tmp_path), all_frames(ann, ["v"]))
    with pytest.raises(VideoReadError, match=r"00001.jpg: frame image cannot be read"):
        ds[0]


def test_own_classes_sample_every_annotated_frame(ucf_root):
    """A classes.txt beside pyannot.pkl (synthetic data) names the classes; ROAD's per-class steps then do not apply."""
    (ucf_root / "splitfiles" / "classes.txt").write_text("a\nb\n")
    dm = UCF101_24DataModule(str(ucf_root), num_workers=0)
    dm.setup("fit")
    assert dm.classes == ["a", "b"] and dm.ratios() is None
    assert [(s.video, s.frame) for s in dm.train_set.samples] == [("Basketball/v_a", f) for f in range(2, 6)] + [
        ("BasketballDunk/v_b", f) for f in range(1, 7)]
