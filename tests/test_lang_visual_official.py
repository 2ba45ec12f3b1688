"""The visual specification network and its tracker as the official ``track_model`` code (QUVA-Lab/lang-tracker)
makes them, and language runs scored on their own first box: training pairs (``tracking_data_provider.py``), the
overlap labels and loss weights (``train_config.py``, ``track_model/ov.txt``), the padded correlation
(``track_model_train.py``) and the peak and size update (``test_track_model_OTB100_pred.py``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoo
from datamodules.otb99lang import OTB99LangSequences, TrackingPairs
from datamodules.synthetic import SynthConfig, synthesize
from datamodules.video import read_rgb
from zoo.lang_tracker.crops import crop_region, crop_regions
from zoo.lang_tracker.labels import iou_map, overlap_labels
from zoo.tracking.base import BatchTracker

FAITHFUL_GEOMETRY = dict(exemplar_size=264, search_size=352, exemplar_context=3.0, search_context=4.0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    cfg = SynthConfig(height=64, width=80, num_frames=7, min_size=8, max_size=16)
    return synthesize("otb99lang", tmp_path_factory.mktemp("lang") / "lang", num_videos=4, seed=1, cfg=cfg)


def test_training_pairs_are_every_ordered_pair_of_frames(synth):
    """tracking_data_provider.py: for i < j both (i, j) and (j, i), over all frames of every training video."""
    seqs = OTB99LangSequences(synth, "train", subset="folders")
    pairs = TrackingPairs(seqs, **FAITHFUL_GEOMETRY)
    lengths = [len(seqs[s]["frames"]) for s in range(len(seqs))]
    assert len(pairs) == sum(n * (n - 1) for n in lengths) == 2 * 7 * 6
    expected = {(s, i, j) for s, n in enumerate(lengths) for i, j in itertools.permutations(range(n), 2)}
    assert {pairs.pair(k) for k in range(len(pairs))} == expected
    near = TrackingPairs(seqs, max_gap=2, **FAITHFUL_GEOMETRY)  # a named option: pairs at most 2 frames apart
    assert {near.pair(k) for k in range(len(near))} == {p for p in expected if abs(p[1] - p[2]) <= 2}
    with pytest.raises(IndexError):
        pairs.pair(len(pairs))


def test_search_crop_is_four_times_frame_js_own_box_centred(synth, tmp_path):
    """The search crop of pair (i, j) is cut around frame j's box at 4x its own size (``cropscale4_resize352``),
    the template around frame i's at 3x (``cropscale3_resize264``): the target is always 88 x 88 at the
    centre, whatever its size in the two frames."""
    import shutil

    root = shutil.copytree(synth, tmp_path / "lang")
    gt = root / "OTB_videos" / "Synth0000" / "groundtruth_rect.txt"
    lines = gt.read_text().splitlines()
    lines[4] = "10,12,30,20"  # the target of frame 4 larger than the others, and not square
    gt.write_text("\n".join(lines) + "\n")
    seqs = OTB99LangSequences(root, "train", subset="folders")
    pairs = TrackingPairs(seqs, **FAITHFUL_GEOMETRY)
    seq = seqs[0]
    boxes = seq["boxes"].numpy()
    i, j = 1, 4
    assert (boxes[i, 2:] != boxes[j, 2:]).all()
    k = next(k for k in range(len(pairs)) if pairs.pair(k) == (0, i, j))
    item = pairs[k]
    np.testing.assert_allclose(item["box"].numpy(), [132, 132, 88, 88], atol=1e-4)
    a, b = boxes[i], boxes[j]
    search, _ = crop_region(read_rgb(seq["frames"][j]), b[:2] + b[2:] / 2, 4 * b[2:], 352)
    exemplar, _ = crop_region(read_rgb(seq["frames"][i]), a[:2] + a[2:] / 2, 3 * a[2:], 264)
    np.testing.assert_array_equal(item["search"].permute(1, 2, 0).numpy(), search)
    np.testing.assert_array_equal(item["exemplar"].permute(1, 2, 0).numpy(), exemplar)


def test_crops_are_black_outside_the_frame_and_sample_pixel_centres():
    """crop_and_pad_bboxes_subtract_mean pads with zeros; skimage's resize samples pixel centres."""
    image = np.tile(np.arange(40, dtype=np.uint8)[None, :, None] * 5 + 10, (30, 1, 3))  # column x: 5 x + 10
    crop, _ = crop_region(image, np.array([0.0, 15.0]), np.array([20.0, 20.0]), 10)  # half of it left of the frame
    assert (crop[:, :5] == 0).all() and (crop[:, 5:] >= 10).all()
    # 2x down: output pixel u is the mean of columns 10 + 2u and 11 + 2u
    crop, _ = crop_region(image, np.array([20.0, 15.0]), np.array([20.0, 20.0]), 10)
    np.testing.assert_allclose(crop[0, :, 0], (np.arange(10, 30, 2) + 0.5) * 5 + 10, atol=1)
    frame = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    gpu = crop_regions([frame], np.array([[20.0, 15.0]]), np.array([[20.0, 20.0]]), [0], 10)
    np.testing.assert_allclose(gpu[0].permute(1, 2, 0).numpy(), crop, atol=1)


def _net(**kwargs):  # the official geometry on the CPU trunk
    torch.manual_seed(0)
    return zoo.create_model("visual_vgg16", backbone="tiny", **kwargs).eval()


def test_labels_and_weights_are_the_official_ones():
    """The overlap map of a 352 px search crop with the padded 44 x 44 response is track_model/ov.txt; the
    positives' weights (overlap >= 0.7) sum to 0.1 and so do the negatives' (< 0.5), as generate_cost_weights."""
    net = _net()
    offset, stride = net.cell_centres(44)
    ov = iou_map((44, 44), stride, offset, (88, 88), np.array([132.0, 132.0, 88.0, 88.0]))
    # values of ov.txt (5 decimals): row 21 from column 15, and the corners
    np.testing.assert_allclose(ov[21, 15:29], [0.24262, 0.31343, 0.39281, 0.48239, 0.58429, 0.70123, 0.83681,
                                               0.83681, 0.70123, 0.58429, 0.48239, 0.39281, 0.31343, 0.24262],
                               atol=1e-5)
    assert ov[0, 0] == ov[43, 43] == 0
    labels, weights = overlap_labels(ov)
    assert (labels == 1).sum() == 12 and (weights[labels == 0] > 0).sum() == 1904
    assert ((ov >= 0.5) & (ov < 0.7)).sum() == 20 and (weights[(ov >= 0.5) & (ov < 0.7)] == 0).all()
    assert weights[labels == 1].sum() == pytest.approx(0.1) and weights[labels == 0].sum() == pytest.approx(0.1)


def test_correlation_is_padded_to_a_44_by_44_map_at_352_px():
    """The DynamicConvolution's kernel 11, pad 5, no bias: on VGG16's stride-8 features of a 352 px crop, a map
    as large as the features; the raw scores are the summed dot products."""
    net = zoo.create_model("visual_vgg16", pretrained_backbone=False).eval()
    g = torch.Generator().manual_seed(0)
    exemplar = torch.randint(0, 256, (1, 3, 264, 264), generator=g, dtype=torch.uint8)
    search = torch.randint(0, 256, (1, 3, 352, 352), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        filters = net.filters(exemplar)
        raw = net.correlation(filters, search)
        expected = F.conv2d(net.features(search), filters, padding=5)
    assert filters.shape == (1, 768, 11, 11) and raw.shape == (1, 1, 44, 44)
    torch.testing.assert_close(raw, expected, rtol=1e-4, atol=1e-4)
    assert not net.scale.requires_grad and not net.bias.requires_grad  # the Power layer is fixed
    torch.testing.assert_close(net.logits(raw), 0.01196 * raw - 1.0)


def test_loss_is_the_weighted_sigmoid_cross_entropy_over_the_batch():
    """WeightedSigmoidCrossEntropyLoss (caffe-lang-track): sum over cells of weight x cross-entropy of
    0.01196 x raw - 1, divided by the batch size."""
    net = _net()
    g = torch.Generator().manual_seed(1)
    batch = {"exemplar": torch.randint(0, 256, (2, 3, 264, 264), generator=g, dtype=torch.uint8),
             "search": torch.randint(0, 256, (2, 3, 352, 352), generator=g, dtype=torch.uint8),
             "box": torch.tensor([[132.0, 132.0, 88.0, 88.0]] * 2)}
    with torch.no_grad():
        loss = net.loss(batch)
        x = 0.01196 * net.correlation(net.filters(batch["exemplar"]), batch["search"])[:, 0] - 1.0
    offset, stride = net.cell_centres(44)
    labels, weights = overlap_labels(iou_map((44, 44), stride, offset, (88, 88), np.array([132.0, 132, 88, 88])))
    y, w = torch.from_numpy(labels), torch.from_numpy(weights)
    caffe = -(w * (x * (y - (x >= 0).float()) - torch.log1p(torch.exp(x - 2 * x * (x >= 0).float())))).sum() / 2
    torch.testing.assert_close(loss, caffe, rtol=1e-5, atol=1e-6)


def _official_step(scores, centre, sample_wh, prev_scale, frame_wh, penalty_value=0.962):
    """One frame of test_track_model_OTB100_pred.py written out as it is (scales, penalty, 1-based argmax
    arithmetic, box from the peak cell, cut to the frame, smoothed size), in continuous pixel coordinates (its
    1-based first pixel x1 is the continuous left edge x1 - 1; the search box is not rounded here)."""
    scales = np.array([0.9639, 1.0, 1.0375], dtype=np.float32)
    penalty = np.full((3, 1, 44, 44), penalty_value)
    penalty[1] = 1.0
    scores = np.multiply(scores, penalty).reshape(-1)
    map_h = map_w = 44
    map_size = map_h * map_w
    max_idx = np.argmax(scores) + 1
    s_idx = int(np.ceil(float(max_idx) / map_size))
    within = np.fmod(max_idx, map_size)
    if within == 0:
        r_idx, c_idx = map_h, map_w
    else:
        r_idx, c_idx = np.ceil(float(within) / map_w), np.fmod(within, map_w)
        c_idx = map_w if c_idx == 0 else c_idx
    region = 4 * scales[s_idx - 1] * sample_wh
    left = centre - region / 2
    x1 = max(left[0] + (c_idx - 1 - 5) * 8 / 352 * region[0], 0)
    y1 = max(left[1] + (r_idx - 1 - 5) * 8 / 352 * region[1], 0)
    x2 = min(x1 + sample_wh[0] * scales[s_idx - 1], frame_wh[0])
    y2 = min(y1 + sample_wh[1] * scales[s_idx - 1], frame_wh[1])
    box = np.array([x1, y1, x2 - x1, y2 - y1])
    prev_scale = prev_scale * (1 - 0.34) + scales[s_idx - 1] * 0.34
    return box, (box[:2] + box[2:] / 2), sample_wh * prev_scale, prev_scale, s_idx - 1


@pytest.mark.parametrize(("first", "penalty"), [([60.0, 40.0, 30.0, 24.0], 0.962),  # inside the frame
                                               ([130.0, 2.0, 34.0, 40.0], 0.962),  # over its edges
                                               ([60.0, 40.0, 30.0, 24.0], 1.0)])  # other scales win too
def test_peak_and_size_update_as_the_official_tracker(first, penalty):
    """Frames tracked by VisualTracker equal the official loop run on the same score maps: the peak cell of the
    penalised raw 44 x 44 maps over three scales, the box the previous size times the best scale on that cell,
    cut to the frame, and the next search around it with the smoothed size."""
    net = _net()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(6)]
    first = np.array(first)
    tracker = net.tracker(scale_penalty=penalty)
    tracker.init_batch(frames[:1], [first])
    centre, size, prev_scale = first[:2] + first[2:] / 2, first[2:].copy(), 1.0
    scales = np.array([0.9639, 1.0, 1.0375])
    chosen = []
    for frame in frames[1:]:
        regions = size[None] * 4 * scales[:, None]
        crops = crop_regions([torch.from_numpy(frame).permute(2, 0, 1)], np.repeat(centre[None], 3, 0), regions,
                             [0, 0, 0], 352)
        with torch.no_grad():
            scores = net.correlation(tracker.filters.repeat(3, 1, 1, 1), crops).numpy()
        expected, centre, size, prev_scale, best = _official_step(scores, centre, size, prev_scale, (160, 120),
                                                                  penalty)
        chosen.append(best)
        got = tracker.update_batch([frame])[0]
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(tracker.sizes[0], size, rtol=1e-6)
        np.testing.assert_allclose(tracker.centres[0], centre, rtol=1e-6, atol=1e-4)
    if penalty == 1.0:
        assert set(chosen) != {1}  # the scale path is exercised


def test_peak_cell_maps_to_the_box_the_official_code_places():
    """A peak at cell (r, c) of the 44 x 44 map puts the box's left edge at crop x1 + (c - 5) * 8 / 352 * width:
    the centre cells 21 / 22 straddle the crop centre, and a peak on the centre of the unit-scale map keeps the
    target where it was."""
    net = _net()
    offset, stride = net.cell_centres(44)
    assert offset == 4.0 and stride == 8.0  # cell c centred on 8 c + 4 crop pixels
    assert (offset + 21 * stride + offset + 22 * stride) / 2 == 352 / 2
    for c in (0, 5, 21, 43):
        assert offset + c * stride - 44 == (c - 5) * 8  # left edge of an 88 px box centred on the cell


class SentenceOnly(BatchTracker):
    """A language tracker that starts from the sentence alone and always reports the same box."""

    needs_sentence = True
    needs_box = False
    name = "sentence_only"

    def __init__(self, box: list[float]) -> None:
        self.box = np.array(box, dtype=np.float64)
        self.given: list = []

    def init_batch(self, images, boxes=None, sentences=None):  # noqa: ANN001, ANN201
        self.given.append(boxes)
        return [self.box.copy() for _ in images]

    def update_batch(self, images):  # noqa: ANN001, ANN201
        return [None if im is None else self.box.copy() for im in images]


def test_language_runs_are_scored_on_their_own_first_box(synth, tmp_path):
    """A tracker that starts from the sentence is not given the first box, the run records it, and it is
    scored on the box it found: a wrong first box scores lower than the same results with frame 1 replaced by
    the ground truth (the OTB convention, which box-initialised trackers keep)."""
    import json

    from zoo.benchmark.otb import score_results
    from zoo.benchmark.tracking import benchmark_otb, gives_first_box

    tracker = SentenceOnly([0.0, 0.0, 6.0, 6.0])  # far from every synthetic target's first box
    kw = dict(subset="folders", dataset="otb99lang", enable_progress_bar=False)
    own = benchmark_otb(tracker, synth, tmp_path, **kw)["sentence_only"]
    assert tracker.given == [None, None]  # one call per test sequence, never a box
    folder = tmp_path / "results" / "sentence_only"
    assert json.loads((folder / "run.json").read_text())["first_box"] == "tracker"
    assert own["meta"]["first_frame"] == "tracker"
    first = np.loadtxt(folder / "Synth0002.txt", delimiter=",")[0]
    np.testing.assert_allclose(first, [0, 0, 6, 6])
    replaced = score_results(folder, root=synth / "OTB_videos", subset="folders", own_first_box=False,
                             names=list(own["seq_wise"]))
    assert replaced["meta"]["first_frame"] == "ground truth"
    assert own["overall"]["success_score"] < replaced["overall"]["success_score"]
    rescored = score_results(folder, root=synth / "OTB_videos", subset="folders", names=list(own["seq_wise"]))
    assert rescored["overall"] == own["overall"]  # scoring the folder again reads the run's record

    # the shipped trackers say how they start: Models I, II and III from the sentence, the visual one from a box
    lang = {"vocab": ["the", "red"]}
    for name in ("lang_model_i_tiny", "lang_model_ii_tiny", "lang_model_iii_tiny"):
        assert not gives_first_box(zoo.create_model(name, lingual=lang).tracker())
    assert gives_first_box(zoo.create_model("visual_tiny").tracker())
    box_run = benchmark_otb(zoo.create_model("identity_tracker"), synth / "OTB_videos", tmp_path / "box",
                            subset="folders", enable_progress_bar=False)
    meta = next(iter(box_run.values()))["meta"]
    assert meta["first_frame"] == "ground truth"
    assert "first_box" not in json.loads(next((tmp_path / "box" / "results").glob("*/run.json")).read_text())


def test_the_visual_configs_build_what_they_say():
    """configs/visual_otb99lang.yaml is the official recipe; visual_tiny_synthetic.yaml the tiny preset's."""
    from pathlib import Path

    import yaml

    from datamodules.otb99lang import TrackingPairsDataModule
    from zoo.lang_tracker import VisualSpecification

    root = Path(__file__).resolve().parents[1] / "configs"
    official = yaml.safe_load((root / "visual_otb99lang.yaml").read_text())
    assert official["trainer"]["max_steps"] == 35000 and official["data"]["init_args"]["batch_size"] == 10
    for name in ("visual_otb99lang.yaml", "visual_tiny_synthetic.yaml"):
        cfg = yaml.safe_load((root / name).read_text())
        model_args = {**cfg["model"]["init_args"], "pretrained_backbone": False}
        model = VisualSpecification(**model_args)
        data = TrackingPairsDataModule(**cfg["data"]["init_args"])
        for key in ("exemplar_size", "search_size", "exemplar_context", "search_context"):
            assert model.hparams[key] == data.hparams[key], (name, key)
    data = official["data"]["init_args"]
    assert data["max_gap"] is None and data["max_shift"] == 0.0
    assert official["model"]["init_args"]["correlation_padding"] == 5
    assert not official["model"]["init_args"]["learned_calibration"]


def test_visual_checkpoints_from_before_the_padded_correlation_rebuild_as_they_were(tmp_path):
    """A checkpoint saved before ``correlation_padding`` and ``learned_calibration`` existed (unpadded, learned scale
    and bias) loads as that network, not as the released one: the same responses and the same cell geometry."""
    torch.manual_seed(0)
    old = zoo.create_model("visual_tiny", correlation_padding=0, learned_calibration=True)
    with torch.no_grad():
        old.scale.fill_(1.7)
        old.bias.fill_(-0.4)
    ckpt = {"state_dict": old.state_dict(), "zoo": {"class_path": "zoo.lang_tracker.visual.VisualSpecification"},
            "hyper_parameters": {k: v for k, v in old.hparams.items()
                                 if k not in ("correlation_padding", "learned_calibration", "preprocessing")}}
    torch.save(ckpt, tmp_path / "old.ckpt")
    loaded = zoo.load(checkpoint_path=tmp_path / "old.ckpt").eval()
    assert loaded.hparams.correlation_padding == 0 and loaded.hparams.learned_calibration
    exemplar = torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)
    search = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(exemplar, search), old.eval()(exemplar, search))
    assert loaded.cell_centres(9) == old.cell_centres(9)
