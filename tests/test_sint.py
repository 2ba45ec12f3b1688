"""SINT: network sizes, loss, training pairs, candidates, box regression, lockstep tracking, bad input."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoo
from datamodules import alov
from datamodules.synthetic import SynthConfig, generate_video, synthesize
from zoo.nn.roi import descriptor_scores
from zoo.sint import contrastive_loss
from zoo.sint.regression import RidgeRegressor, apply_targets, rcnn_targets
from zoo.sint.sampling import (
    box_iou,
    caffe_rois,
    candidate_boxes,
    candidate_count,
    regression_samples,
    sample_training_boxes,
    training_candidates,
)
from zoo.sint.tracker import flow_support

CFG = SynthConfig(height=96, width=128, num_frames=16, min_size=8, max_size=14)


def test_faithful_embedding_is_54272_at_512():
    net = zoo.create_model("sint_vgg16", pretrained_backbone=False).eval()
    assert net.embedding_dim == 54272
    x = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 10.0, 10, 100, 100], [0, 50, 60, 200, 300]])
    with torch.no_grad():
        c4, c5 = net.trunk(x)
        f = net(x, rois)
    assert c4.shape[-1] == c5.shape[-1] == 128  # stride 4: only pool1 and pool2 kept
    assert f.shape == (2, 54272)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(2))
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert len(frozen) == 2 * 9  # conv1_1 .. conv4_2: weights and biases


def test_contrastive_loss_by_hand():
    d = torch.tensor([0.5, 0.2, 1.5, 0.8])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    # 1/2 y D^2 + 1/2 (1 - y) max(0, 1 - D^2), averaged
    by_hand = (0.5 * 0.25 + 0.5 * (1 - 0.04) + 0.5 * 0.0 + 0.5 * 0.64) / 4
    assert float(contrastive_loss(d, y, margin=1.0)) == pytest.approx(by_hand)


def test_training_boxes_obey_iou_thresholds():
    rng = np.random.default_rng(0)
    gt = np.array([100.0, 80.0, 40.0, 60.0])
    assert len(training_candidates(gt, 10_000, 10_000)) == 160  # funcSample.m: 16 angles x 10 radii
    boxes, labels = sample_training_boxes(gt, 320, 240, rng)
    assert boxes.shape == (64, 4) and labels.shape == (64,)
    np.testing.assert_array_equal(boxes[0], gt)
    assert len(np.unique(boxes[1:], axis=0)) == 63  # drawn without replacement
    ious = box_iou(boxes, gt)
    assert ((ious > 0.7) == (labels == 1)).all() and (ious[labels == 0] < 0.5).all()
    assert ((ious <= 0.7) & (ious >= 0.5)).sum() == 0
    assert (boxes[:, 2:] == gt[2:]).all()
    assert ((boxes[:, 0] > 0) & (boxes[:, 0] + boxes[:, 2] < 320)).all()
    # a box filling most of the frame has too few candidates: no sample (the official scripts drop the pair)
    assert sample_training_boxes(np.array([10.0, 10.0, 300.0, 220.0]), 320, 240, rng) is None


def test_pairs_give_128_and_skip_excluded_and_broken_videos(tmp_path, caplog):
    root = synthesize("alov", tmp_path / "alov", num_videos=6, seed=3, cfg=CFG)
    videos = alov.list_videos(root)
    # rename one video to an excluded OTB-overlap name and one category to LongDuration
    first = videos[0]
    ann = root / alov.ANN_DIR / first.category / f"{first.name}.ann"
    (root / alov.ANN_DIR / "01-Light").mkdir(parents=True)
    (root / alov.FRAMES_DIR / "01-Light").mkdir(parents=True)
    ann.rename(root / alov.ANN_DIR / "01-Light" / "01-Light_video00007.ann")
    first.frames_dir.rename(root / alov.FRAMES_DIR / "01-Light" / "01-Light_video00007")
    # a broken video: an annotation row past the last frame
    broken = videos[1]
    broken_ann = root / alov.ANN_DIR / broken.category / f"{broken.name}.ann"
    broken_ann.write_text(broken_ann.read_text() + "999 1 2 1 1 3 1 3 2\n")
    with caplog.at_level(logging.WARNING):
        usable = alov.usable_videos(root)
    names = {v.name for v in usable}
    assert "01-Light_video00007" not in names and broken.name not in names and len(usable) == 4
    assert f"{broken_ann}" in caplog.text and "out of range" in caplog.text
    assert len(alov.usable_videos(root, exclude=False)) == 5
    train, val = alov.split_videos(usable)
    assert {v.category for v in val} == {v.category for v in usable} and len(train) + len(val) == 4
    ds = alov.ALOVPairs(usable, input_size=64)
    item = ds[0]
    assert item["boxes"][0, 0].tolist() == caffe_rois(usable[0].boxes[ds.items[0][1]], 0, 64 / CFG.width,
                                                      64 / CFG.height, rounded=True)[0, 1:].tolist()
    assert item["images"].shape == (2, 3, 64, 64) and item["boxes"].shape == (2, 64, 4)
    # the pairs: the ground truth of each frame against the 64 boxes of the other
    assert item["labels"].numel() == 128 and (item["labels"][:, 0] == 1).all()
    assert (item["boxes"][..., 2:] > item["boxes"][..., :2]).all() and item["boxes"].max() <= 64
    augmented = alov.ALOVPairs(usable, input_size=64, augment=True)[1]  # albumentations, boxes carried along
    assert augmented["boxes"].shape == (2, 64, 4) and (augmented["labels"][:, 0] == 1).all()
    # a missing frame is skipped with a warning naming the annotation file too
    victim = usable[0]
    victim.frame_path(sorted(victim.boxes)[1]).unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert victim.name not in {v.name for v in alov.usable_videos(root)}
    assert f"{victim.name}.ann" in caplog.text and "missing" in caplog.text


def test_pairs_are_every_later_annotated_frame(tmp_path):
    """prepare4hdf5gen.m: annotations thinned 1:2, each with every later one of its video; a frame with fewer than
    63 candidates is dropped with its pairs; pairs="random" gives one partner per frame."""
    cfg = SynthConfig(height=120, width=160, num_frames=40, min_size=10, max_size=16)
    root = synthesize("alov", tmp_path / "alov", num_videos=4, seed=5, cfg=cfg)
    videos = alov.usable_videos(root)
    ds = alov.ALOVPairs(videos, input_size=64)
    expected, rng = [], np.random.default_rng(0)
    for v, video in enumerate(videos):
        thinned = sorted(video.boxes)[::2]
        kept = [n for n in thinned if sample_training_boxes(video.boxes[n], 160, 120, rng) is not None]
        assert ds.frames[v] == kept
        expected += [(v, a, b) for i, a in enumerate(kept) for b in kept[i + 1:]]
    assert ds.items == expected and len(ds) >= 4 * 3  # 8 annotations -> 4 -> 6 pairs per video when all qualify
    random_pairs = alov.ALOVPairs(videos, input_size=64, pairs="random")
    assert len(random_pairs) == sum(len(f) for f in ds.frames if len(f) > 1)
    assert random_pairs[0]["boxes"].shape == (2, 64, 4)


def test_candidate_grid_is_run_sint_otbs():
    """run_SINT_OTB.py: 363 candidates at 640 x 480 (radius 30 x 640 / 512 = 37.5 px, 12 steps of 3 px, 10 angles,
    plus no move, 3 scales), anchored at the previous box's top-left corner, rounded, strictly inside the frame;
    plain SINT's fixed 30 px radius gives 10 steps: 303."""
    previous, first = np.array([300.0, 200.0, 40.0, 50.0]), np.array([40.0, 50.0])
    boxes = candidate_boxes(previous, first, 640, 480)
    assert len(boxes) == 363 == candidate_count(640)
    fixed = candidate_boxes(previous, first, 640, 480, adaptive=False)
    assert len(fixed) == 303 == candidate_count(640, adaptive=False)
    radii = np.linalg.norm(boxes[:, :2] - previous[:2], axis=1)
    assert radii.max() == pytest.approx(36, abs=0.75) and np.isclose(radii, 0).sum() == 3  # 12 x 3 px; rounding
    # anchored at the top-left corner, not the centre: every scale has the same 121 corners
    corners = [{tuple(c) for c in boxes[np.abs(boxes[:, 2] - s * 40) <= 1, :2]} for s in (0.7071, 1.0, 1.4142)]
    assert len(corners[0]) == 121 and corners[0] == corners[1] == corners[2]
    assert (boxes == np.round(boxes)).all()
    near_edge = candidate_boxes(np.array([2.0, 2.0, 40.0, 50.0]), first, 640, 480)
    assert 0 < len(near_edge) < 363 and (near_edge[:, :2] > 0).all()


def test_search_radius_plain_sint_fixed_and_sint_plus_adaptive():
    """Plain SINT searches 30 px around the previous box (Sec. 4.2); SINT+ and the released code 30 W / 512."""
    frame = np.zeros((512, 1024, 3), np.uint8)
    model = zoo.create_model("sint_tiny")
    for flow, radius in ((False, 30.0), (True, 30.0 * 1024 / 512)):
        tracker = model.tracker(regression=False, flow=flow)
        tracker.init(frame, np.array([500.0, 240.0, 24.0, 32.0]))
        move = tracker.candidates()[:, :2] - np.array([500.0, 240.0])
        assert np.linalg.norm(move, axis=1).max() == pytest.approx(3 * math.floor(radius / 3), abs=0.75)


def test_regression_samples_as_released():
    """20 angles, 1 px radial steps to 30 W / 512, 7 scales 0.7 .. 1/0.7 at the box's corner, IoU > 0.6."""
    box = np.array([300.0, 200.0, 40.0, 50.0])
    samples = regression_samples(box, 640, 480)
    assert (box_iou(samples, box) > 0.6).all() and len(samples) > 100
    widths = set(np.round(samples[:, 2]).astype(int))
    assert {round(0.8 * 40), 40, round(40 / 0.8)} <= widths
    assert np.isclose(samples, box).all(1).any()  # the box itself (zero offset, scale 1)


def test_ridge_regression_recovers_a_known_shift():
    rng = np.random.default_rng(0)
    gt = np.array([50.0, 40.0, 30.0, 20.0])
    proposals = gt + np.c_[rng.normal(0, 3, (200, 2)), np.zeros((200, 2))]
    targets = rcnn_targets(proposals, gt)
    # features that encode the offset linearly, plus noise dimensions
    feats = np.c_[proposals[:, :2] - gt[:2], rng.normal(0, 1e-3, (200, 30))]
    reg = RidgeRegressor(alpha=1e-6, fit_intercept=True).fit(torch.from_numpy(feats), torch.from_numpy(targets))
    test = np.array([56.0, 37.0, 30.0, 20.0])
    t = reg.predict(torch.from_numpy(np.r_[test[:2] - gt[:2], np.zeros(30)])[None])[0].numpy()
    np.testing.assert_allclose(apply_targets(test, t), gt, atol=1e-3)


def test_ridge_defaults_are_alpha_1_without_intercept():
    """run_SINT_OTB.py: Ridge(alpha=1, fit_intercept=False), i.e. W = (X'X + I)^-1 X'Y and no bias."""
    rng = np.random.default_rng(1)
    x, y = torch.from_numpy(rng.normal(size=(30, 12)) + 3.0), torch.from_numpy(rng.normal(size=(30, 4)))
    reg = RidgeRegressor().fit(x, y)
    primal = torch.linalg.solve(x.T @ x + torch.eye(12, dtype=x.dtype), x.T @ y)
    torch.testing.assert_close(reg.weight, primal)
    torch.testing.assert_close(reg.predict(torch.zeros(1, 12, dtype=x.dtype)), torch.zeros(1, 4, dtype=x.dtype))
    with_bias = RidgeRegressor(fit_intercept=True).fit(x, y)
    assert not torch.allclose(with_bias.predict(torch.zeros(1, 12, dtype=x.dtype)), torch.zeros(1, 4, dtype=x.dtype))


def test_flow_check_counts_pixels_of_the_unrefined_previous_box():
    """SINT+ (run_SINT_OTB.py): the previous *unrefined* box's pixels, moved by the flow, must fill more than 0.25 of
    its area inside a top candidate; bounds inclusive."""
    flow = np.zeros((60, 80, 2), np.float32)
    flow[..., 0] = 5.0  # everything moves 5 px right
    prev = np.array([11.0, 11.0, 10.0, 10.0])  # pixels 11..20 (1-based)
    cands = np.array([[16.0, 11.0, 10.0, 10.0], [26.0, 11.0, 10.0, 10.0], [20.0, 11.0, 10.0, 10.0]])
    assert flow_support(flow, prev, cands).tolist() == [100, 0, 60]

    model = zoo.create_model("sint_tiny")
    frame = np.zeros((96, 128, 3), np.uint8)
    tracker = model.tracker(flow=True, regression=False)
    tracker.init(frame, np.array([40.0, 30.0, 16.0, 16.0]))
    st = tracker._states[0]
    st.previous, refined = np.array([40.0, 30.0, 16.0, 16.0]), np.array([80.0, 60.0, 16.0, 16.0])
    cands = np.array([refined, st.previous])  # the refined box scores best but has no support from `previous`
    assert tracker._flow_check(st, frame, cands, np.array([1.0, 0.5]), 0) == 1


def test_lockstep_tracking_equals_one_sequence_at_a_time():
    torch.manual_seed(0)
    model = zoo.create_model("sint_tiny")
    videos = [generate_video(5, i, CFG) for i in range(3)]
    alone = []
    for v in videos:
        tr = model.tracker()
        tr.init(v.frames[0], v.target.boxes[0])
        alone.append([tr.update(f) for f in v.frames[1:8]])
    together = model.tracker()
    together.init_batch([v.frames[0] for v in videos], [v.target.boxes[0] for v in videos])
    steps = [
        together.update_batch([v.frames[t] if t < 8 - i else None for i, v in enumerate(videos)]) for t in range(1, 8)
    ]
    for i in range(3):
        for t in range(1, 8 - i):
            np.testing.assert_allclose(steps[t - 1][i], alone[i][t - 1], rtol=1e-4, atol=1e-3)
        for t in range(8 - i, 8):
            assert steps[t - 1][i] is None


def test_descriptor_scores_equal_whole_descriptors():
    torch.manual_seed(0)
    parts = [torch.randn(7, 12), torch.randn(7, 5), torch.randn(7, 3)]
    parts[1][2] = 0  # a zero part: F.normalize leaves it zero and the descriptor has two parts' length
    whole = F.normalize(torch.cat([F.normalize(p, dim=1) for p in parts], 1), dim=1)
    queries = F.normalize(torch.randn(3, 20), dim=1)
    owner = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    torch.testing.assert_close(descriptor_scores(parts, queries, [2, 3, 2]), (whole * queries[owner]).sum(1))
    even = torch.tensor([0, 0, 1, 1, 2, 2])  # equal counts: one broadcast product
    torch.testing.assert_close(descriptor_scores([p[:6] for p in parts], queries, [2, 2, 2]),
                               (whole[:6] * queries[even]).sum(1))
    with pytest.raises(ValueError, match="20"):
        descriptor_scores(parts[:2], queries, [2, 3, 2])
    with pytest.raises(ValueError, match="8 rows"):
        descriptor_scores(parts, queries, [2, 3, 3])


@pytest.mark.parametrize("flow", [False, True])
def test_fused_tracking_gives_the_former_paths_boxes(flow):
    """The fused path (scores from the descriptor's parts, best picked on the device, its pooled conv4_3 reused for
    the regression) tracks exactly as the former one, with sequences whose candidate counts differ."""
    torch.manual_seed(0)
    model = zoo.create_model("sint_tiny")
    videos = [generate_video(5, i, CFG) for i in range(3)]
    starts = [v.target.boxes[0] for v in videos]
    starts[1] = np.array([2.0, 3.0, 12.0, 10.0])  # at the corner: candidates leave the image
    runs, counts = {}, set()
    for fused in (False, True):
        tracker = model.tracker(fused=fused, flow=flow)
        tracker.init_batch([v.frames[0] for v in videos], starts)
        steps = []
        for t in range(1, 8):
            counts.add(tuple(len(tracker.candidates(i)) for i in range(3)))
            steps.append(tracker.update_batch([v.frames[t] if t < 8 - i else None for i, v in enumerate(videos)]))
        runs[fused] = steps
    assert any(len(set(c)) > 1 for c in counts)
    for before, after in zip(runs[False], runs[True]):
        for a, b in zip(before, after):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(b, a, rtol=0, atol=1e-9)


def test_sint_plus_and_zero_size_box():
    model = zoo.create_model("sint_tiny")
    v = generate_video(6, 0, CFG)
    plus = model.tracker(flow=True)
    assert plus.name == "SINT+"
    plus.init(v.frames[0], v.target.boxes[0])
    box = plus.update(v.frames[1])
    assert box.shape == (4,) and np.isfinite(box).all()
    with pytest.raises(ValueError, match="positive size"):
        model.tracker().init(v.frames[0], np.array([10.0, 10.0, 0.0, 5.0]))


def test_sint_tiny_learns_to_track(tmp_path):
    """Trained on synthetic ALOV pairs whose objects change colour and light (as in ALOV's Light and SurfaceCover
    videos), sint_tiny tracks held-out synthetic OTB sequences clearly better than the untrained network, and
    the held-out pairs separate."""
    import pytorch_lightning as pl

    from zoo.benchmark.tracking import benchmark_otb
    from zoo.trainer import build_trainer

    cfg = SynthConfig(appearance_change=0.8)
    root = synthesize("alov", tmp_path / "alov", num_videos=120, seed=11, cfg=cfg)
    otb = synthesize("otb", tmp_path / "otb", num_videos=40, seed=12, cfg=cfg)
    pl.seed_everything(0)
    untrained = zoo.create_model("sint_tiny")
    pl.seed_everything(0)
    model = zoo.create_model("sint_tiny")
    # the tiny preset's choices (configs/sint_tiny_synthetic.yaml): one random partner per annotated frame and the
    # resolution-adaptive radius; with the released all-later-pairs and plain SINT's 30 px radius it reached 0.517
    dm = alov.ALOVDataModule(str(root), input_size=128, batch_size=8, num_workers=2, pairs="random", annotation_step=1)
    trainer = build_trainer(max_epochs=3, loggers="", enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, default_root_dir=str(tmp_path))
    before = trainer.validate(model, dm, verbose=False)[0]
    trainer.fit(model, dm)
    after = trainer.validate(model, dm, verbose=False)[0]
    assert after["val/neg_dist"] - after["val/pos_dist"] > before["val/neg_dist"] - before["val/pos_dist"] + 0.2
    auc = {}
    for name, net in (("trained", model), ("untrained", untrained)):
        perf = benchmark_otb(net.eval().tracker(adaptive_radius=True), otb, tmp_path / "bench", subset="folders",
                             name=name, batch_size=40, enable_progress_bar=False)
        auc[name] = perf[name]["overall"]["success_score"]
    print(f"SINT tiny, OTB AUC on 40 held-out synthetic sequences: {auc}")
    assert auc["trained"] >= 0.5 and auc["trained"] > auc["untrained"] + 0.05, auc


def test_faithful_sint_has_a_linear_fc6_and_prototxt_bias_groups():
    """SINT_deploy.prototxt: fc6 is linear before its L2 normalisation (the descriptor's fc6 block has negative
    entries; the tiny preset keeps its ReLU); SINT_train.prototxt: biases at 2x their layer's rate, no decay."""
    from zoo.sint import SINT

    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    rois = torch.tensor([[0.0, 4.0, 4.0, 40.0, 40.0], [0.0, 10.0, 8.0, 60.0, 50.0]])
    blocks = {}
    for relu in (False, True):
        model = SINT(backbone="tiny", input_size=64, fc6_relu=relu).eval()
        with torch.no_grad():
            blocks[relu] = model(x, rois)[:, -model.trunk.fc6_out:]
    assert (blocks[False] < 0).any() and (blocks[True] >= 0).all()
    assert SINT().hparams.fc6_relu is False and zoo.create_model("sint_tiny").hparams.fc6_relu is True

    model = SINT(backbone="tiny", input_size=64, lr=1e-3, weight_decay=5e-4, slow_lr_factor=0.01)
    groups = model.configure_optimizers().param_groups
    named = dict(model.named_parameters())
    for g in groups:
        names = {n for n, p in named.items() if any(p is q for q in g["params"])}
        is_bias = all(n.endswith("bias") for n in names)
        assert is_bias or not any(n.endswith("bias") for n in names)
        assert g["weight_decay"] == (0.0 if is_bias else 5e-4)
        assert g["lr"] == pytest.approx(1e-3 * (2.0 if is_bias else 1.0))  # the tiny trunk has no slow layers
    assert sum(len(g["params"]) for g in groups) == len([p for p in named.values() if p.requires_grad])
