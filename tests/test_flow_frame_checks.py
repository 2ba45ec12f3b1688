"""Flow folders checked once against their RGB frames when a detection datamodule builds its datasets (and when the
benchmark runs a flow detector): missing flow frames or flow images of another size are one error naming the video,
or with ``on_error="skip"`` the video is left out and counted. Tiny synthetic UCF101-24 tree (64 x 48, 8 frames)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datamodules.action_tubes import read_pyannot
from datamodules.synthetic import SynthConfig, generate_tube_video, write_ucf101_24
from datamodules.ucf101_24 import UCF101_24DataModule
from zoo.benchmark.detector_run import benchmark_detector
from zoo.errors import DatasetError
from zoo.module import ZooModule

FRAMES, H, W = 8, 48, 64


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory) -> Path:
    """Six videos: four training (split 1), two test."""
    root = tmp_path_factory.mktemp("ucf24")
    cfg = SynthConfig(height=H, width=W, num_frames=FRAMES, min_size=5, max_size=9)
    write_ucf101_24([generate_tube_video(0, i, cfg, label=i % 2) for i in range(6)], root)
    return root


@pytest.fixture
def root(clean_tree, tmp_path) -> Path:
    return Path(shutil.copytree(clean_tree, tmp_path / "ucf24"))


def _videos(root: Path) -> tuple[list[str], list[str]]:
    return read_pyannot(root / "splitfiles" / "pyannot.pkl").splits[1]


def _dm(root: Path, **kwargs) -> UCF101_24DataModule:
    return UCF101_24DataModule(str(root), **{"inputs": "rgb+flow", "num_workers": 0, "pin_memory": False, **kwargs})


def _drop_flow(root: Path, video: str, frames: list[int]) -> Path:
    for f in frames:
        (root / "fastOF-images" / video / f"{f:05d}.jpg").unlink()
    return root / "fastOF-images" / video


def _shrink_flow(root: Path, video: str) -> Path:
    """Rewrite every flow image of ``video`` at 32 x 24."""
    for path in (root / "fastOF-images" / video).glob("*.jpg"):
        assert cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (32, 24)))
    return root / "fastOF-images" / video


def _sample_keys(dataset) -> list[tuple[str, int]]:
    return [(s.video, s.frame) for s in dataset.samples]


def test_missing_flow_frames_name_the_video_and_counts(root):
    train, _ = _videos(root)
    folder = _drop_flow(root, train[1], [7, 3, 5])
    with pytest.raises(DatasetError) as e:
        _dm(root).setup("fit")
    assert str(e.value) == f"{folder}: flow folder lacks 3 of the {FRAMES} frames in rgb-images (first: 00003.jpg)"
    # no flow folder at all
    (root / "fastOF-images" / train[1]).rename(root / "moved")
    with pytest.raises(DatasetError, match=f"^{root / 'fastOF-images' / train[1]}: flow folder not found$"):
        _dm(root).setup("fit")


def test_flow_of_another_size_names_the_video_and_both_sizes(root):
    _, test = _videos(root)
    folder = _shrink_flow(root, test[0])
    dm = _dm(root)
    assert len(dm.dataset("train")) > 0  # the check runs per subset, on the videos it uses: training ones are fine
    with pytest.raises(DatasetError) as e:
        dm.setup("fit")  # its validation set is built from the test videos
    assert str(e.value) == f"{folder}: flow images are 32x24, frames {W}x{H}"
    assert "\n" not in str(e.value)


def test_skip_leaves_the_video_out_and_counts_it(root, caplog):
    train, test = _videos(root)
    clean = _dm(root, ratios=None)
    clean.setup("fit")
    clean.setup("test")
    missing = _drop_flow(root, train[0], [FRAMES])
    small = _shrink_flow(root, test[1])
    dm = _dm(root, ratios=None, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="datamodules.detection_frames"):
        dm.setup("fit")
        dm.setup("test")
    assert dm.skipped_videos == {
        train[0]: f"{missing}: flow folder lacks 1 of the {FRAMES} frames in rgb-images (first: {FRAMES:05d}.jpg)",
        test[1]: f"{small}: flow images are 32x24, frames {W}x{H}",
    }
    assert _sample_keys(dm.train_set) == [k for k in _sample_keys(clean.train_set) if k[0] != train[0]]
    assert _sample_keys(dm.val_set) == [k for k in _sample_keys(clean.val_set) if k[0] != test[1]]
    assert _sample_keys(dm.test_set) == [k for k in _sample_keys(clean.test_set) if k[0] != test[1]]
    assert {k[0] for k in _sample_keys(dm.train_set)} == set(train[1:])
    assert {k[0] for k in _sample_keys(dm.test_set)} == {test[0]}
    # logged once per video although two datasets (val, test) use the test videos
    lines = [r.getMessage() for r in caplog.records if "skipping video" in r.getMessage()]
    assert sorted(lines) == sorted(f"skipping video {v}: {why}" for v, why in dm.skipped_videos.items())
    item = dm.train_set[0]
    assert item["flow"].shape == item["rgb"].shape == (3, 300, 300)


def test_rgb_only_is_not_checked(root):
    train, test = _videos(root)
    _drop_flow(root, train[0], [1, 2])
    _shrink_flow(root, test[0])
    shutil.rmtree(root / "fastOF-images" / train[1])
    dm = _dm(root, inputs="rgb", ratios=None, on_error="skip")
    dm.setup("fit")
    dm.setup("test")
    assert dm.skipped_videos == {}
    assert {k[0] for k in _sample_keys(dm.train_set)} == set(train)
    assert {k[0] for k in _sample_keys(dm.test_set)} == set(test) and len(dm.test_set) == len(test) * FRAMES


def test_flow_only_without_rgb_checks_the_annotated_frames(root):
    train, _ = _videos(root)
    shutil.rmtree(root / "rgb-images")
    dm = _dm(root, inputs="flow", ratios=None)
    dm.setup("fit")  # every annotated frame has its flow image
    assert dm.skipped_videos == {} and dm.train_set[0]["flow"].shape == (3, 300, 300)
    folder = _drop_flow(root, train[2], [2])
    with pytest.raises(DatasetError) as e:
        _dm(root, inputs="flow").setup("fit")
    assert str(e.value) == f"{folder}: flow folder lacks 1 of the {FRAMES} frames of the annotation (first: 00002.jpg)"


class FlowDetector(ZooModule):
    """A user's two-stream detector that must never run here: the benchmark stops before the test loop."""

    def __init__(self, input_size: int = 32, modality: str = "rgb+flow") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def detect(self, images: torch.Tensor, flows: torch.Tensor | None) -> list[np.ndarray]:
        raise AssertionError("detect() ran on a video whose flow does not fit its frames")


def test_benchmark_checks_flow_before_running(root, tmp_path):
    _, test = _videos(root)
    folder = _shrink_flow(root, test[1])
    ann = read_pyannot(root / "splitfiles" / "pyannot.pkl")
    with pytest.raises(DatasetError) as e:
        benchmark_detector(FlowDetector(), root, ann, test, tmp_path / "results", {"dataset": "ucf101-24"},
                           num_workers=0, accelerator="cpu", devices=1, enable_progress_bar=False)
    assert str(e.value) == f"{folder}: flow images are 32x24, frames {W}x{H}"
