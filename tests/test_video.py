"""Video reading on the real videos in ../shared/data/videos and real OTB frames."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.base import SkippingDataset
from datamodules.video import FrameFolderReader, open_video
from zoo.errors import VideoReadError

# Frame counts of the real files (pysot_bag.avi and opentracker_oneperson.mp4 from shared/README.md;
# the .mp4 container announces 443 frames, one more than it decodes).
FRAME_COUNTS = {"pysot_bag.avi": 196, "opentracker_oneperson.mp4": 442, "bikes.mp4": 250, "carphone_pristine.mp4": 120}


@pytest.mark.parametrize("name", sorted(FRAME_COUNTS))
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_frame_counts(shared, name, backend):
    with open_video(shared / "videos" / name, backend=backend) as video:
        assert len(video) == FRAME_COUNTS[name]
        assert 20 < video.fps < 31


@pytest.mark.parametrize("name", ["pysot_bag.avi", "opentracker_oneperson.mp4"])
def test_decord_and_pyav_agree(shared, name):
    path = shared / "videos" / name
    idx = [0, 1, 57, 133, FRAME_COUNTS[name] - 1, 9, 9]
    a = open_video(path, "decord").get_frames(idx)
    b = open_video(path, "pyav").get_frames(idx)
    assert a.shape == b.shape and a.dtype == np.uint8 and a.shape[-1] == 3
    assert np.abs(a.astype(np.int16) - b).mean() < 2.0
    # the last decodable frame is a real frame, not a repeat of the one before it
    assert np.abs(a[4].astype(np.int16) - open_video(path, "decord").get_frames([FRAME_COUNTS[name] - 2])[0]).mean() > 0


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_random_access_equals_sequential(shared, backend):
    path = shared / "videos" / "pysot_bag.avi"
    video = open_video(path, backend)
    sequential = video.get_frames(np.arange(len(video)))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(video), 12)
    np.testing.assert_array_equal(video.get_frames(idx), sequential[idx])


def test_resize_while_decoding_and_clamping(shared):
    path = shared / "videos" / "bikes.mp4"
    for backend in ("decord", "pyav"):
        frames = open_video(path, backend, size=(90, 160)).get_frames([0, 10**6])
        assert frames.shape == (2, 90, 160, 3)
    full = open_video(path)
    np.testing.assert_array_equal(full.get_frames([10**6, -5]), full.get_frames([len(full) - 1, 0]))


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_truncated_video_gives_clear_error(shared, tmp_path, backend):
    data = (shared / "videos" / "opentracker_oneperson.mp4").read_bytes()
    broken = tmp_path / "truncated.mp4"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="truncated.mp4"):
        open_video(broken, backend).get_frames([0])


def test_missing_video_names_the_file(tmp_path):
    with pytest.raises(VideoReadError, match="nothere.avi"):
        open_video(tmp_path / "nothere.avi")


def test_frame_folder_reads_otb_frames(shared):
    img = shared / "otb" / "sequences" / "Crossing" / "img"
    video = open_video(img)
    assert isinstance(video, FrameFolderReader) and len(video) == 120
    assert video.files[0].name == "0001.jpg" and video.files[-1].name == "0120.jpg"
    frames = video.get_frames([0, 119])
    assert frames.shape[0] == 2 and frames.dtype == np.uint8
    assert open_video(img, size=(60, 80)).get_frames([3]).shape == (1, 60, 80, 3)


def test_frame_folder_orders_numbers_naturally(tmp_path):
    import cv2

    for i in (1, 2, 10, 100):
        cv2.imwrite(str(tmp_path / f"{i:05d}.jpg"), np.full((8, 8, 3), i, np.uint8))
    video = open_video(tmp_path)
    assert [p.name for p in video.files] == ["00001.jpg", "00002.jpg", "00010.jpg", "00100.jpg"]


class _Videos(SkippingDataset):
    def __init__(self, paths, on_error):
        super().__init__(on_error)
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def load(self, index):
        return open_video(self.paths[index]).get_frames([0])


def test_dataset_can_skip_corrupt_videos(shared, tmp_path, caplog):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    good = shared / "videos" / "carphone_pristine.mp4"
    strict = _Videos([broken, good], "raise")
    with pytest.raises(VideoReadError, match="broken.mp4"):
        strict[0]
    lenient = _Videos([broken, good], "skip")
    assert lenient[0].shape[0] == 1
    assert list(lenient.skipped) == [0] and "broken.mp4" in caplog.text
