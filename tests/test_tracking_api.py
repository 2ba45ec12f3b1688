"""The got10k-style tracker API: images as numpy, PIL, grayscale or paths; ``track``; clear errors; a user's
own ``Tracker`` subclass through ``benchmark_otb``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from datamodules.otb import read_boxes
from datamodules.synthetic import SynthConfig, generate_video, synthesize
from zoo.benchmark.tracking import benchmark_otb
from zoo.tracking import Tracker, as_box, as_rgb

CFG = SynthConfig(height=64, width=80, num_frames=4, min_size=8, max_size=12)


@pytest.fixture(scope="module")
def gray_video(tmp_path_factory):
    """A synthetic video made gray, its first box, and its frames in every form a user may pass."""
    v = generate_video(2, 0, CFG)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in v.frames]
    rgb = [np.repeat(g[:, :, None], 3, axis=2) for g in gray]
    folder = tmp_path_factory.mktemp("frames")
    paths = []
    for t, g in enumerate(gray):
        paths.append(folder / f"{t:04d}.png")  # lossless, so the file reads back as the array
        cv2.imwrite(str(paths[-1]), g)
    forms = {
        "numpy": rgb,
        "pil": [Image.fromarray(f) for f in rgb],
        "pil_gray": [Image.fromarray(g) for g in gray],
        "gray": gray,
        "gray1": [g[:, :, None] for g in gray],
        "path": paths,
        "str": [str(p) for p in paths],
    }
    return rgb, v.target.boxes[0].copy(), forms


def test_as_rgb_turns_every_form_into_the_same_rgb_uint8(gray_video):
    rgb, _, forms = gray_video
    for name, frames in forms.items():
        out = as_rgb(frames[1])
        assert out.dtype == np.uint8 and out.shape == (CFG.height, CFG.width, 3) and out.flags.c_contiguous, name
        np.testing.assert_array_equal(out, rgb[1], err_msg=name)
    assert as_rgb(rgb[1]) is rgb[1]  # already RGB uint8 contiguous: no copy
    colour = generate_video(2, 0, CFG).frames[0]
    rgba = np.concatenate([colour, np.full(colour.shape[:2] + (1,), 7, np.uint8)], 2)
    np.testing.assert_array_equal(as_rgb(rgba), colour)  # alpha dropped, as PIL's convert("RGB")
    np.testing.assert_array_equal(as_rgb(Image.fromarray(rgba)), colour)
    flipped = colour[:, ::-1]
    np.testing.assert_array_equal(as_rgb(flipped), flipped)
    assert as_rgb(flipped).flags.c_contiguous


def _run(tracker: Tracker, frames: list, box: np.ndarray) -> np.ndarray:
    tracker.init(frames[0], box)
    return np.stack([tracker.update(f) for f in frames[1:]])


@pytest.mark.parametrize(
    "arch, forms_used",
    [("identity_tracker", ["pil", "pil_gray", "gray", "gray1", "path", "str"]), ("sint_tiny", ["pil", "gray", "path"])],
)
def test_same_frames_in_any_form_give_the_same_boxes(gray_video, arch, forms_used):
    _, box, forms = gray_video
    torch.manual_seed(0)
    model = zoo.load(arch, pretrained=False)
    reference = _run(zoo.tracking.as_tracker(model), forms["numpy"], box)
    assert reference.shape == (len(forms["numpy"]) - 1, 4) and np.isfinite(reference).all()
    for name in forms_used:
        np.testing.assert_array_equal(_run(zoo.tracking.as_tracker(model), forms[name], box), reference, err_msg=name)
    # forms mixed in one lockstep batch, boxes as a list and a tuple; None ends the second sequence early
    tracker = zoo.tracking.as_tracker(model)
    tracker.init_batch([forms["pil"][0], forms["path"][0]], [box.tolist(), tuple(box)])
    last = len(reference)
    steps = [
        tracker.update_batch([forms["gray"][t], forms["str"][t] if t < last else None]) for t in range(1, last + 1)
    ]
    np.testing.assert_allclose(np.stack([s[0] for s in steps]), reference, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.stack([s[1] for s in steps[:-1]]), reference[:-1], rtol=1e-4, atol=1e-3)
    assert steps[-1][1] is None


def test_track_is_got10k_track(gray_video):
    _, box, forms = gray_video
    n = len(forms["path"])
    identity = zoo.load("identity_tracker", pretrained=False)
    boxes, times = identity.track(forms["path"], box.tolist())
    assert boxes.shape == (n, 4) and times.shape == (n,) and (times > 0).all()
    np.testing.assert_array_equal(boxes, np.repeat(box[None], n, 0))

    torch.manual_seed(0)
    tracker = zoo.load("sint_tiny", pretrained=False).tracker()
    boxes, times = tracker.track([str(p) for p in forms["path"]], tuple(box))
    assert boxes.shape == (n, 4) and boxes.dtype == np.float64 and times.shape == (n,) and (times > 0).all()
    np.testing.assert_array_equal(boxes[0], box)
    np.testing.assert_array_equal(boxes[1:], _run(tracker, forms["numpy"], box))
    with pytest.raises(ValueError, match="at least one frame"):
        tracker.track([], box)


def test_bad_images_and_boxes_are_clear_errors(gray_video, tmp_path):
    rgb, box, _ = gray_video
    tracker = zoo.load("identity_tracker", pretrained=False)
    with pytest.raises(TypeError, match=r"expected an image .* got int 42"):
        tracker.init(42, box)
    with pytest.raises(TypeError, match="got list"):
        as_rgb([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="must be uint8.*float32"):
        as_rgb(rgb[0].astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*got \(2, 3, 4, 5\)"):
        as_rgb(np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(FileNotFoundError, match="missing.png: no such image file"):
        as_rgb(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(zoo.errors.VideoReadError, match="notes.txt: cannot read image"):
        as_rgb(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="4 numbers"):
        tracker.init(rgb[0], [1, 2, 3])
    with pytest.raises(ValueError, match="4 numbers"):
        as_box("abcd")
    with pytest.raises(ValueError, match="positive size"):
        tracker.init(rgb[0], [1, 2, 0, 4])
    with pytest.raises(ValueError, match="positive size"):
        as_box([float("nan"), 2, 3, 4])
    np.testing.assert_array_equal(as_box(np.array([[1, 2, 3, 4]])), [1.0, 2.0, 3.0, 4.0])
    sint = zoo.load("sint_tiny", pretrained=False).tracker()
    with pytest.raises(ValueError, match="positive size"):
        sint.init(rgb[0], [10, 10, -3, 5])
    with pytest.raises(ValueError, match="2 images but 1 boxes"):
        sint.init_batch([rgb[0], rgb[1]], [box])
    sint.init(rgb[0], box)
    with pytest.raises(TypeError, match="got NoneType"):
        sint.update(None)
    with pytest.raises(TypeError, match="got dict"):
        sint.update_batch([{}])


class BrightestTracker(Tracker):
    """A user's tracker: keeps the first box's size and centres it on the brightest pixel."""

    name = "Brightest"

    def __init__(self) -> None:
        self.seen: list[tuple] = []  # shared by the per-sequence copies of the default init_batch

    def init(self, image, box):  # noqa: ANN001, ANN201
        self.seen.append((type(image), image.dtype, image.shape))
        self.size = np.asarray(box, dtype=np.float64)[2:]

    def update(self, image):  # noqa: ANN001, ANN201
        self.seen.append((type(image), image.dtype, image.shape))
        y, x = np.unravel_index(int(np.argmax(image.sum(2))), image.shape[:2])
        return np.array([x - self.size[0] / 2, y - self.size[1] / 2, *self.size])


def test_a_users_tracker_runs_through_benchmark_otb(tmp_path):
    cfg = SynthConfig(height=64, width=80, num_frames=10)
    root = synthesize("otb", tmp_path / "otb", num_videos=3, seed=0, cfg=cfg)
    tracker = BrightestTracker()
    perf = benchmark_otb(tracker, root=root, out_dir=tmp_path / "out", subset="folders")
    assert set(perf) == {"Brightest"}
    names = sorted(perf["Brightest"]["seq_wise"])
    assert len(names) == 3
    assert set(tracker.seen) == {(np.ndarray, np.dtype(np.uint8), (64, 80, 3))} and len(tracker.seen) == 3 * 10
    results = tmp_path / "out" / "results" / "Brightest"
    for name in names:
        boxes = read_boxes(results / f"{name}.txt")
        assert boxes.shape == (10, 4)
        gt = read_boxes(Path(root) / name / "groundtruth_rect.txt")
        np.testing.assert_allclose(boxes[0], gt[0])  # the given first box, then the tracker's own
        assert (results / "times" / f"{name}_time.txt").is_file()
        # the benchmark's boxes are what track() gives on the same frames
        frames = sorted((Path(root) / name / "img").iterdir())
        own, _ = BrightestTracker().track(frames, gt[0])
        np.testing.assert_allclose(boxes, own, atol=1e-3)
    assert 0.0 <= perf["Brightest"]["overall"]["success_score"] <= 1.0
