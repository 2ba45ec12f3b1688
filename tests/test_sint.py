"""SINT: network sizes, loss, training pairs, candidates, box regression, lockstep tracking, bad input."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

import zoo
from datamodules import alov
from datamodules.synthetic import SynthConfig, generate_video, synthesize
from zoo.sint import contrastive_loss
from zoo.sint.regression import RidgeRegressor, apply_targets, rcnn_targets
from zoo.sint.sampling import box_iou, candidate_boxes, candidate_offsets, polar_boxes, sample_training_boxes

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
    assert len(polar_boxes(gt, 10_000, 10_000)) == 160
    boxes, labels = sample_training_boxes(gt, 320, 240, rng)
    assert boxes.shape == (64, 4) and labels.shape == (64,)
    np.testing.assert_array_equal(boxes[0], gt)
    ious = box_iou(boxes, gt)
    assert ((ious > 0.7) == (labels == 1)).all() and (ious[labels == 0] < 0.5).all()
    assert ((ious <= 0.7) & (ious >= 0.5)).sum() == 0
    assert (boxes[:, 2:] == gt[2:]).all()
    assert ((boxes[:, 0] >= 0) & (boxes[:, 0] + boxes[:, 2] <= 320)).all()


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


def test_candidate_count_for_a_known_frame():
    assert len(candidate_offsets()) == 101  # zero + 10 angles x 10 radii (3 px steps to 30 px)
    first = np.array([20.0, 20.0])
    boxes = candidate_boxes(np.array([502.0, 502.0, 20.0, 20.0]), first, 1024, 1024, input_size=512)
    assert len(boxes) == 3 * 101  # far from the borders: everything kept
    np.testing.assert_allclose(sorted(set(np.round(boxes[:, 2], 6))), [20 / math.sqrt(2), 20, 20 * math.sqrt(2)])
    steps = np.linalg.norm(candidate_offsets()[1:], axis=1)
    assert steps.max() == pytest.approx(30) and steps.min() == pytest.approx(3)
    corner = candidate_boxes(np.array([0.0, 0.0, 20.0, 20.0]), first, 1024, 1024, input_size=512)
    assert 0 < len(corner) < 303 and (corner[:, :2] >= 0).all()  # boxes leaving the image are dropped


def test_search_radius_is_the_papers_fraction_of_the_frame_at_any_input_size():
    """30 px at the paper's 512 x 512 input, i.e. 30 W / 512 in the frame, for sint_tiny's 128 x 128 input too."""
    import zoo

    frame = np.zeros((512, 1024, 3), np.uint8)
    tracker = zoo.create_model("sint_tiny").tracker(regression=False)
    tracker.init(frame, np.array([500.0, 240.0, 24.0, 32.0]))
    c = tracker.candidates()
    centres = c[:, :2] + c[:, 2:] / 2 - np.array([512.0, 256.0])
    assert np.abs(centres[:, 0]).max() == pytest.approx(30 * 1024 / 512)
    assert np.abs(centres[:, 1]).max() == pytest.approx(30 * 512 / 512, rel=0.05)  # sin(72 deg) of 30


def test_ridge_regression_recovers_a_known_shift():
    rng = np.random.default_rng(0)
    gt = np.array([50.0, 40.0, 30.0, 20.0])
    proposals = gt + np.c_[rng.normal(0, 3, (200, 2)), np.zeros((200, 2))]
    targets = rcnn_targets(proposals, gt)
    # features that encode the offset linearly, plus noise dimensions
    feats = np.c_[proposals[:, :2] - gt[:2], rng.normal(0, 1e-3, (200, 30))]
    reg = RidgeRegressor(lam=1e-6).fit(torch.from_numpy(feats), torch.from_numpy(targets))
    test = np.array([56.0, 37.0, 30.0, 20.0])
    t = reg.predict(torch.from_numpy(np.r_[test[:2] - gt[:2], np.zeros(30)])[None])[0].numpy()
    np.testing.assert_allclose(apply_targets(test, t), gt, atol=1e-3)


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
    dm = alov.ALOVDataModule(str(root), input_size=128, batch_size=8, num_workers=2)
    trainer = build_trainer(max_epochs=3, loggers="", enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, default_root_dir=str(tmp_path))
    before = trainer.validate(model, dm, verbose=False)[0]
    trainer.fit(model, dm)
    after = trainer.validate(model, dm, verbose=False)[0]
    assert after["val/neg_dist"] - after["val/pos_dist"] > before["val/neg_dist"] - before["val/pos_dist"] + 0.2
    auc = {}
    for name, net in (("trained", model), ("untrained", untrained)):
        perf = benchmark_otb(net.eval().tracker(), otb, tmp_path / "bench", subset="folders", name=name,
                             batch_size=40, enable_progress_bar=False)
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
