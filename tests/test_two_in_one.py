"""Two-in-One stream action detection (Zhao & Snoek, CVPR 2019) and its SSD baselines (ROAD): default boxes,
MultiBox loss, the motion condition / modulation layers, late fusion, the VGG16 reduction, optimiser groups,
checkpoints and bad input. Expected values are computed by hand (ssd.pytorch's formulas written out here)."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import zoo
from zoo.nn.multibox import MultiBoxLoss, class_detections, match
from zoo.nn.ssd import CAFFE_MEAN_RGB, SSD, SSD300_PRIORS, prior_boxes, vgg16_reducedfc_state
from zoo.two_in_one import ActionSSD, MotionCondition, MotionModulation, TwoStreamSSD, boost, fuse

TINY = {"trunk": "tiny", "input_size": 128}


def images(b: int = 2, size: int = 128, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 255


def convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


# ---------------------------------------------------------------------------------------------------------------
# 1. default boxes


def ssd_pytorch_priorbox() -> torch.Tensor:
    """ssd.pytorch's ``PriorBox.forward`` for the ``v2`` config, written out."""
    image_size, feature_maps, steps = 300, [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300]
    min_sizes, max_sizes = [30, 60, 111, 162, 213, 264], [60, 111, 162, 213, 264, 315]
    aspect_ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    mean = []
    for k, f in enumerate(feature_maps):
        for i, j in product(range(f), repeat=2):
            f_k = image_size / steps[k]
            cx, cy = (j + 0.5) / f_k, (i + 0.5) / f_k
            s_k = min_sizes[k] / image_size
            mean.append((cx, cy, s_k, s_k))
            s_prime = math.sqrt(s_k * (max_sizes[k] / image_size))
            mean.append((cx, cy, s_prime, s_prime))
            for ar in aspect_ratios[k]:
                mean.append((cx, cy, s_k * math.sqrt(ar), s_k / math.sqrt(ar)))
                mean.append((cx, cy, s_k / math.sqrt(ar), s_k * math.sqrt(ar)))
    return torch.tensor(mean, dtype=torch.float64).clamp(0, 1)


def test_ssd300_priors_are_ssd_pytorch_priorbox():
    expected = ssd_pytorch_priorbox()
    got = prior_boxes(SSD300_PRIORS).double()
    assert got.shape == (8732, 4) == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert SSD300_PRIORS.boxes_per_location == [4, 6, 6, 6, 4, 4]
    assert (expected[:, 2:] == 1).any()  # the clamp matters (264 * sqrt 2 > 300)


@pytest.fixture(scope="module")
def ssd300_two_in_one():
    torch.manual_seed(0)
    return zoo.create_model("two_in_one", num_classes=24).eval()


def test_ssd300_two_in_one_shapes(ssd300_two_in_one):
    """One SSD300 forward: source maps 38, 19, 10, 5, 3, 1; 8,732 priors; 25 classes; condition map 32 x 300 x 300
    and the modulated feature conv2_1 after ReLU (128 x 150 x 150)."""
    model = ssd300_two_in_one
    assert model.ssd.modulate_index == model.ssd.layer_index["conv2_1"] == 6
    assert isinstance(model.ssd.vgg[6], nn.ReLU) and model.ssd.vgg[5].out_channels == 128
    seen: dict[str, tuple] = {}
    hooks = [head.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, tuple(i[0].shape[-2:])))
             for k, head in enumerate(model.ssd.loc)]
    hooks.append(model.modulation.register_forward_hook(
        lambda m, i, o: seen.update(feature=tuple(i[0].shape), condition=tuple(i[1].shape), out=tuple(o.shape))))
    with torch.no_grad():
        loc, conf = model(images(1, 300), images(1, 300, seed=1))
    for h in hooks:
        h.remove()
    assert [seen[k] for k in range(6)] == [(f, f) for f in (38, 19, 10, 5, 3, 1)]
    assert [h.out_channels for h in model.ssd.loc] == [4 * k for k in (4, 6, 6, 6, 4, 4)]
    assert loc.shape == (1, 8732, 4) and conf.shape == (1, 8732, 25)
    assert seen["feature"] == seen["out"] == (1, 128, 150, 150)
    assert seen["condition"] == (1, 32, 300, 300)


# ---------------------------------------------------------------------------------------------------------------
# 2. / 3. matching and the MultiBox loss


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_match_forces_each_box_best_prior_and_offsets_labels():
    priors_xyxy = [(0.0, 0.0, 0.5, 0.5), (0.6, 0.6, 1.0, 1.0), (0.0, 0.0, 0.6, 0.5)]
    priors = torchvision.ops.box_convert(torch.tensor(priors_xyxy), "xyxy", "cxcywh")
    gt1, gt2 = (0.0, 0.0, 0.5, 0.45), (0.3, 0.3, 0.6, 0.6)
    # by hand: gt1 overlaps prior 0 at 0.9 and prior 2 at 0.75; gt2's best prior is prior 2, at 0.18 < 0.5
    assert iou(gt1, priors_xyxy[0]) == pytest.approx(0.9) and iou(gt1, priors_xyxy[2]) == pytest.approx(0.75)
    assert iou(gt2, priors_xyxy[2]) == pytest.approx(0.06 / 0.33) and iou(gt2, priors_xyxy[0]) < 0.06 / 0.33
    conf, boxes = match(torch.tensor([gt1, gt2]), torch.tensor([3, 0]), priors)
    assert conf.tolist() == [4, 0, 1]  # labels + 1, 0 background; prior 2 forced to gt2 despite gt1's 0.75
    torch.testing.assert_close(boxes[[0, 2]], torch.tensor([gt1, gt2]))
    # two boxes sharing their best prior: the later one takes it although the earlier overlaps it more (0.92)
    gt1b = (0.0, 0.0, 0.5, 0.46)
    assert iou(gt1b, priors_xyxy[0]) == pytest.approx(0.92) and iou(gt1b, priors_xyxy[2]) > 0.75
    conf, _ = match(torch.tensor([gt1b, gt1]), torch.tensor([3, 5]), priors)
    assert conf.tolist() == [6, 0, 4]
    conf, _ = match(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), priors)
    assert conf.tolist() == [0, 0, 0]


def encode(gt, prior, variances=(0.1, 0.2)) -> list[float]:
    cx, cy, w, h = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2, gt[2] - gt[0], gt[3] - gt[1]
    pcx, pcy, pw, ph = prior
    return [(cx - pcx) / (variances[0] * pw), (cy - pcy) / (variances[0] * ph),
            math.log(w / pw) / variances[1], math.log(h / ph) / variances[1]]


def smooth_l1(d: float) -> float:
    return 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5


def cross_entropy(logits: list[float], target: int) -> float:
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


def hand_multibox(loc, conf, priors, boxes, labels, threshold=0.5, neg_pos=3):
    """ssd.pytorch's MultiBoxLoss, loop by loop; returns (loc loss, conf loss, per image (positives, negatives))."""
    priors = priors.tolist()
    pxyxy = [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for cx, cy, w, h in priors]
    total_l = total_c = 0.0
    n_pos, chosen = 0, []
    for b in range(len(boxes)):
        gts, labs = boxes[b].tolist(), labels[b].tolist()
        target = [0] * len(priors)
        owner = [None] * len(priors)
        if gts:
            overlaps = [[iou(g, p) for p in pxyxy] for g in gts]
            for p in range(len(priors)):
                best = max(range(len(gts)), key=lambda g: overlaps[g][p])
                if overlaps[best][p] >= threshold:
                    owner[p] = best
            for g in range(len(gts)):  # each box claims its best prior, later boxes winning
                owner[max(range(len(priors)), key=lambda p: overlaps[g][p])] = g
            target = [0 if o is None else labs[o] + 1 for o in owner]
        pos = [p for p in range(len(priors)) if target[p] > 0]
        for p in pos:
            t = encode(gts[owner[p]], priors[p])
            total_l += sum(smooth_l1(loc[b, p, i].item() - t[i]) for i in range(4))
        negatives = [p for p in range(len(priors)) if target[p] == 0]
        negatives.sort(key=lambda p: -cross_entropy(conf[b, p].tolist(), 0))
        neg = negatives[:min(neg_pos * len(pos), len(priors) - 1)]
        total_c += sum(cross_entropy(conf[b, p].tolist(), target[p]) for p in pos + neg)
        n_pos += len(pos)
        chosen.append((sorted(pos), sorted(neg)))
    n = max(n_pos, 1)
    return total_l / n, total_c / n, chosen


def test_multibox_loss_equals_hand_computation():
    # ten priors: the four quadrants, a small centre box, the whole image, four small corner boxes
    priors = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.25, 0.5, 0.5], [0.25, 0.75, 0.5, 0.5],
                           [0.75, 0.75, 0.5, 0.5], [0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 1.0, 1.0],
                           [0.1, 0.1, 0.2, 0.2], [0.9, 0.1, 0.2, 0.2], [0.1, 0.9, 0.2, 0.2], [0.9, 0.9, 0.2, 0.2]])
    boxes = [torch.tensor([[0.02, 0.02, 0.5, 0.52]]),  # prior 0 at IoU 0.89
             torch.tensor([[0.42, 0.42, 0.5, 0.5], [0.55, 0.05, 0.95, 0.5]]),  # prior 4 at 0.16: forced; prior 1
             torch.zeros(0, 4)]  # no boxes: no positives, no negatives
    labels = [torch.tensor([2]), torch.tensor([0, 5]), torch.zeros(0, dtype=torch.long)]
    g = torch.Generator().manual_seed(3)
    loc = torch.randn(3, 10, 4, generator=g)
    conf = torch.randn(3, 10, 7, generator=g)
    conf[0, [7, 8, 9], 0] = -4.0  # the hardest negatives of image 0 (low background logit)
    loss_l, loss_c = MultiBoxLoss()(loc, conf, priors, boxes, labels)
    hand_l, hand_c, chosen = hand_multibox(loc, conf, priors, boxes, labels)
    # the case is what it claims: image 0 mines 3 of 9 negatives, image 1 forces prior 4 and mines 6 of 8
    assert chosen[0] == ([0], [7, 8, 9])
    assert chosen[1][0] == [1, 4] and len(chosen[1][1]) == 6 and iou(boxes[1][0].tolist(), (0.4, 0.4, 0.6, 0.6)) < 0.5
    assert chosen[2] == ([], [])
    assert loss_l.item() == pytest.approx(hand_l, rel=1e-5)
    assert loss_c.item() == pytest.approx(hand_c, rel=1e-5)
    # the no-box image adds nothing: the loss over images 0 and 1 alone is the same
    two_l, two_c = MultiBoxLoss()(loc[:2], conf[:2], priors, boxes[:2], labels[:2])
    assert (two_l.item(), two_c.item()) == pytest.approx((loss_l.item(), loss_c.item()), rel=1e-6)
    # all negatives kept would give another conf loss (mining matters)
    _, all_c, _ = hand_multibox(loc, conf, priors, boxes, labels, neg_pos=100)
    assert abs(all_c - hand_c) > 1e-2


def test_multibox_targets_are_encoded_with_variances():
    priors = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]])
    gt = (0.05, 0.1, 0.45, 0.5)
    conf_t, loc_t = MultiBoxLoss().targets([torch.tensor([gt])], [torch.tensor([1])], priors)
    assert conf_t.tolist() == [[2, 0]]
    torch.testing.assert_close(loc_t[0, 0], torch.tensor(encode(gt, (0.25, 0.25, 0.5, 0.5))), atol=1e-5, rtol=0)
    # (cx 0.25 - 0.25) / 0.05 = 0, (cy 0.3 - 0.25) / 0.05 = 1, log(0.8) / 0.2, log(0.8) / 0.2
    torch.testing.assert_close(loc_t[0, 0], torch.tensor([0.0, 1.0, math.log(0.8) / 0.2, math.log(0.8) / 0.2]))


# ---------------------------------------------------------------------------------------------------------------
# 4. / 5. / 6. motion condition and modulation


def test_motion_layers_have_the_official_shapes():
    cond = MotionCondition()
    layers = convs(cond)
    assert [c.kernel_size for c in layers] == [(1, 1)] * 3 + [(3, 3)]
    assert [(c.in_channels, c.out_channels) for c in layers] == [(3, 64), (64, 64), (64, 64), (64, 32)]
    with torch.no_grad():
        c = cond(images(1, 300) - 120)
        assert c.shape == (1, 32, 300, 300)
        mod = MotionModulation(32, 128, 2)
        for branch in (mod.gamma, mod.beta):
            a, b = convs(branch)
            assert (a.in_channels, a.out_channels, a.kernel_size) == (32, 32, (1, 1))
            assert (b.in_channels, b.out_channels, b.kernel_size, b.stride) == (32, 128, (3, 3), (2, 2))
            assert branch(c).shape == (1, 128, 150, 150)


def test_modulation_is_feature_times_gamma_plus_one_plus_beta():
    mod = MotionModulation(4, 6, 2)
    feature = torch.randn(1, 6, 5, 5)
    condition = torch.randn(1, 4, 10, 10)
    with torch.no_grad():
        for branch, value in ((mod.gamma, 0.5), (mod.beta, -2.0)):
            branch[-1].weight.zero_()
            branch[-1].bias.fill_(value)
        out = mod(feature, condition)
    torch.testing.assert_close(out, feature * 1.5 - 2.0)


def test_zero_modulation_is_the_rgb_ssd():
    torch.manual_seed(0)
    two, rgb = zoo.create_model("two_in_one_tiny").eval(), zoo.create_model("ssd_rgb_tiny").eval()
    rgb.ssd.load_state_dict(two.ssd.state_dict())
    x, flow = images(2), images(2, seed=1)
    with torch.no_grad():
        modulated = two.raw(x, flow)
        plain = rgb.raw(x, None)
        assert not torch.allclose(modulated[1], plain[1], atol=1e-5)  # the default gamma / beta change the output
        for branch in (two.modulation.gamma, two.modulation.beta):
            branch[-1].weight.zero_()
            branch[-1].bias.zero_()
        zeroed = two.raw(x, flow)
        loc_two, conf_two = two(x, flow)
        loc_rgb, conf_rgb = rgb(x)
    for a, b in zip(zeroed, plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(loc_two, loc_rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(conf_two, conf_rgb, atol=1e-5, rtol=0)


def test_modulate_at_is_a_parameter():
    model = zoo.create_model("two_in_one_tiny", modulate_at="conv3_1").eval()
    assert model.ssd.modulate_index == model.ssd.layer_index["conv3_1"]
    assert model.modulation.gamma[-1].stride == (4, 4) and model.modulation.gamma[-1].out_channels == 32
    shapes = []
    model.modulation.register_forward_hook(lambda m, i, o: shapes.append((tuple(i[0].shape), tuple(o.shape))))
    with torch.no_grad():
        loc, _ = model(images(1), images(1, seed=1))
    assert shapes == [((1, 32, 32, 32), (1, 32, 32, 32))]
    assert loc.shape == (1, model.ssd.priors.shape[0], 4)
    default = zoo.create_model("two_in_one_tiny")
    assert default.modulation.gamma[-1].stride == (2, 2) and default.modulation.gamma[-1].out_channels == 16
    with pytest.raises(ValueError, match=r"modulate_at .*conv1_1, conv1_2, conv2_1.*'conv9_9'"):
        zoo.create_model("two_in_one_tiny", modulate_at="conv9_9")


@pytest.mark.parametrize("name", ["fc7", "source"])
def test_modulate_at_outside_the_conv_layers_is_refused(name):
    """SSD's own message says modulate_at must name a conv layer; other entries of its layer index are refused with
    the same one-line error (not a failed int() parse)."""
    with pytest.raises(ValueError, match=rf"modulate_at .*conv1_1.*{name!r}"):
        zoo.create_model("two_in_one_tiny", modulate_at=name)


# ---------------------------------------------------------------------------------------------------------------
# 7. / 8. detections and fusion


def rows(t: torch.Tensor) -> np.ndarray:
    return t.double().numpy()


# Two streams over three priors, classes (background, c0, c1)
RGB_BOXES = torch.tensor([[0.1, 0.1, 0.4, 0.4], [0.6, 0.6, 0.9, 0.9], [0.7, 0.0, 0.9, 0.2]])
RGB_SCORES = torch.tensor([[0.4, 0.6, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])
FLOW_BOXES = torch.tensor([[0.12, 0.1, 0.4, 0.4], [0.6, 0.6, 0.9, 0.9], [0.0, 0.7, 0.2, 0.9]])
FLOW_SCORES = torch.tensor([[0.2, 0.8, 0.0], [0.7, 0.3, 0.0], [0.8, 0.0, 0.2]])
IOU_A0_B0 = 0.28 * 0.3 / 0.09  # flow box 0 inside RGB box 0


def test_fusion_mean_averages_scores_on_rgb_boxes():
    got = fuse((RGB_BOXES, RGB_SCORES), (FLOW_BOXES, FLOW_SCORES), "mean")
    a0, a1, a2 = RGB_BOXES.tolist()
    expected = [[0, 0.7, *a0], [0, 0.15, *a1], [1, 0.25, *a1], [1, 0.1, *a2]]  # prior 2 keeps the RGB box
    np.testing.assert_allclose(rows(got), expected, atol=1e-6)


def test_fusion_union_pools_then_nms_per_class():
    got = fuse((RGB_BOXES, RGB_SCORES), (FLOW_BOXES, FLOW_SCORES), "union")
    a0, a1, _ = RGB_BOXES.tolist()
    b0, b1, b2 = FLOW_BOXES.tolist()
    assert IOU_A0_B0 > 0.45
    # RGB c0 0.6 on a0 is suppressed by flow c0 0.8 on b0; flow c0 on b1 = a1 survives (RGB's a1 is c1)
    expected = [[0, 0.8, *b0], [0, 0.3, *b1], [1, 0.5, *a1], [1, 0.2, *b2]]
    np.testing.assert_allclose(rows(got), expected, atol=1e-6)


def test_fusion_boost_adds_flow_score_times_iou():
    got = fuse((RGB_BOXES, RGB_SCORES), (FLOW_BOXES, FLOW_SCORES), "boost")
    a0, a1, _ = RGB_BOXES.tolist()
    _, b1, b2 = FLOW_BOXES.tolist()
    # a0 (c0 0.6) takes b0 (c0 0.8, IoU 0.933); b1 (c0) does not boost a1 (c1) and joins, as b2 (no overlap)
    expected = [[0, 0.6 + 0.8 * IOU_A0_B0, *a0], [0, 0.3, *b1], [1, 0.5, *a1], [1, 0.2, *b2]]
    np.testing.assert_allclose(rows(got), expected, atol=1e-5)


def test_boost_rule_on_detection_rows():
    x, y = [0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.4, 0.36]
    base = torch.tensor([[0, 0.9, *x], [0, 0.5, *y], [1, 0.4, 0.6, 0.6, 1.0, 1.0]])
    f0 = [0.0, 0.0, 0.4, 0.38]  # the best flow box of both base rows 0 and 1 (IoU 0.95 and 0.947)
    f1 = [0.0, 0.0, 0.4, 0.30]  # overlaps row 1 at 0.83 but is not its best: no boost, joins
    f2 = [0.6, 0.6, 1.0, 0.69]  # class 1 at IoU 0.225 < 0.3 with row 2: no boost, joins
    top = torch.tensor([[0, 0.5, *f0], [0, 0.2, *f1], [1, 0.7, *f2]])
    assert iou(x, f0) == pytest.approx(0.95) and iou(y, f0) == pytest.approx(0.36 / 0.38)
    got = boost(base, top, 0.3)
    expected = [[0, 0.9 + 0.5 * 0.95, *x], [0, 0.5, *y], [1, 0.4, 0.6, 0.6, 1.0, 1.0], [0, 0.2, *f1], [1, 0.7, *f2]]
    np.testing.assert_allclose(rows(got), expected, atol=1e-6)
    # the IoU threshold is a parameter: at 0.2, row 2 takes f2
    got = boost(base, top, 0.2)
    assert got[2, 1].item() == pytest.approx(0.4 + 0.7 * 0.225, abs=1e-6) and len(got) == 4


def test_fusion_keeps_top_k_per_class():
    # three disjoint boxes per stream, one class: top_k = 2 keeps the two highest of the pooled six
    boxes_a = torch.tensor([[0.0, 0.0, 0.1, 0.1], [0.2, 0.0, 0.3, 0.1], [0.4, 0.0, 0.5, 0.1]])
    boxes_b = boxes_a + torch.tensor([0.0, 0.5, 0.0, 0.5])
    scores_a = torch.tensor([[0.5, 0.5], [0.7, 0.3], [0.9, 0.1]])
    scores_b = torch.tensor([[0.6, 0.4], [0.8, 0.2], [0.95, 0.05]])
    for rule in ("union", "boost"):
        got = fuse((boxes_a, scores_a), (boxes_b, scores_b), rule, top_k=2)
        np.testing.assert_allclose(rows(got), [[0, 0.5, *boxes_a[0].tolist()], [0, 0.4, *boxes_b[0].tolist()]],
                                   atol=1e-6)
    got = fuse((boxes_a, scores_a), (boxes_b, scores_b), "mean", top_k=2)
    np.testing.assert_allclose(rows(got)[:, 1], [0.45, 0.25], atol=1e-6)
    with pytest.raises(ValueError, match="fusion must be one of mean, union, boost, not 'max'"):
        fuse((boxes_a, scores_a), (boxes_b, scores_b), "max")


def test_class_detections_top_k_before_nms_then_threshold_and_order():
    # class 0: 30 candidates; the 20 best are 10 pairs of identical boxes, the 10 others disjoint and weaker
    boxes, scores = [], []
    for k in range(10):
        box = [0.05 * k, 0.0, 0.05 * k + 0.04, 0.04]
        boxes += [box, box]
        scores += [0.9 - 0.02 * k, 0.89 - 0.02 * k]
    for k in range(10):
        boxes.append([0.05 * k, 0.5, 0.05 * k + 0.04, 0.54])
        scores.append(0.5 - 0.01 * k)
    p = len(boxes)
    conf = torch.zeros(p, 3)
    conf[:, 1] = torch.tensor(scores)
    conf[:2, 2] = torch.tensor([0.011, 0.01])  # class 1: only the first is above 0.01
    conf[20, 2] = 0.3
    conf[:, 0] = 1 - conf[:, 1:].sum(1)
    got = class_detections(torch.tensor(boxes), conf, 0.01, 0.45, 20)
    # only the 20 best class-0 candidates are looked at: NMS leaves one of each pair, the weaker 10 never come in
    expected = [[0, 0.9 - 0.02 * k, *boxes[2 * k]] for k in range(10)]
    expected += [[1, 0.3, *boxes[20]], [1, 0.011, *boxes[0]]]
    np.testing.assert_allclose(rows(got), expected, atol=1e-6)
    more = class_detections(torch.tensor(boxes), conf, 0.01, 0.45, 30)
    assert (more[:, 0] == 0).sum() == 20  # with top_k 30 the weaker ten come in


# ---------------------------------------------------------------------------------------------------------------
# 9. VGG16 reduced fc


def test_vgg16_reducedfc_state_decimates_and_folds():
    torch.manual_seed(0)
    vgg = torchvision.models.vgg16().state_dict()
    state = vgg16_reducedfc_state(vgg)
    fc6 = vgg["classifier.0.weight"].view(4096, 512, 7, 7)
    assert state["vgg.31.weight"].shape == (1024, 512, 3, 3)
    assert torch.equal(state["vgg.31.weight"], fc6[::4, :, ::3, ::3])
    assert torch.equal(state["vgg.31.bias"], vgg["classifier.0.bias"][::4])
    assert state["vgg.33.weight"].shape == (1024, 1024, 1, 1)
    assert torch.equal(state["vgg.33.weight"][:, :, 0, 0], vgg["classifier.3.weight"][::4, ::4])
    assert torch.equal(state["vgg.28.weight"], vgg["features.28.weight"])
    SSD(25).vgg.load_state_dict({k[len("vgg."):]: v for k, v in state.items()}, strict=True)
    # conv1_1 folded: torchvision's on (x / 255 - mean) / std == folded on x - Caffe mean, off the border
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64) * 255
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    conv = torch.nn.functional.conv2d
    ref = conv((x / 255 - mean) / std, vgg["features.0.weight"].double(), vgg["features.0.bias"].double(), padding=1)
    caffe = torch.tensor(CAFFE_MEAN_RGB, dtype=torch.float64).view(1, 3, 1, 1)
    got = conv(x - caffe, state["vgg.0.weight"].double(), state["vgg.0.bias"].double(), padding=1)
    torch.testing.assert_close(got[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-4, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# 10. optimiser


def lr_trace(out: dict, steps: int) -> list[list[float]]:
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    trace = []
    for _ in range(steps):
        trace.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return trace


def test_action_ssd_optimiser_groups_and_schedule():
    model = ActionSSD(**TINY, milestones=(2, 4), gamma=0.1)
    out = model.configure_optimizers()
    opt = out["optimizer"]
    assert isinstance(opt, torch.optim.SGD)
    weights, biases = opt.param_groups
    named = dict(model.named_parameters())
    assert {id(p) for p in weights["params"]} == {id(p) for n, p in named.items() if not n.endswith("bias")}
    assert {id(p) for p in biases["params"]} == {id(p) for n, p in named.items() if n.endswith("bias")}
    assert (weights["lr"], weights["weight_decay"], weights["momentum"]) == (1e-3, 5e-4, 0.9)
    assert (biases["lr"], biases["weight_decay"]) == (2e-3, 0.0)
    expected = [[1e-3 * f, 2e-3 * f] for f in (1, 1, 0.1, 0.1, 0.01, 0.01)]
    np.testing.assert_allclose(lr_trace(out, 6), expected, rtol=1e-9)


def test_two_stream_optimiser_has_both_streams_with_their_schedules():
    model = TwoStreamSSD({**TINY, "milestones": (2,), "lr": 1e-3}, {**TINY, "milestones": (3,), "lr": 4e-3})
    out = model.configure_optimizers()
    groups = out["optimizer"].param_groups
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    assert {id(p) for g in groups[2:] for p in g["params"]} == {id(p) for p in model.motion.parameters()}
    expected = [[1e-3, 2e-3, 4e-3, 8e-3]] * 2 + [[1e-4, 2e-4, 4e-3, 8e-3]] + [[1e-4, 2e-4, 4e-4, 8e-4]] * 2
    np.testing.assert_allclose(lr_trace(out, 5), expected, rtol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# 11. two streams: joining, checkpoint, detect


def test_two_stream_from_streams_checkpoint_and_detect(tmp_path):
    torch.manual_seed(0)
    rgb, flow = zoo.create_model("ssd_rgb_tiny"), zoo.create_model("ssd_flow_tiny")
    model = TwoStreamSSD.from_streams(rgb, flow, fusion="boost")
    for stream, source in ((model.appearance, rgb), (model.motion, flow)):
        for key, value in source.state_dict().items():
            assert torch.equal(stream.state_dict()[key], value)
    with torch.no_grad():
        rgb.ssd.loc[0].bias.add_(1.0)  # a copy, not the same tensors
    assert not torch.equal(model.appearance.ssd.loc[0].bias, rgb.ssd.loc[0].bias)
    path = model.save(tmp_path / "two.ckpt")  # ZooModule.save: atomic, sha256 beside it
    assert (tmp_path / "two.ckpt.sha256").is_file()
    loaded = zoo.load(checkpoint_path=path)
    assert isinstance(loaded, TwoStreamSSD) and loaded.hparams.fusion == "boost"
    x, flows = images(2), images(2, seed=1)
    dets, again = model.eval().detect(x, flows), loaded.detect(x, flows)
    assert len(dets) == 2
    for d, e in zip(dets, again):
        assert d.ndim == 2 and d.shape[1] == 6 and len(d) > 0
        np.testing.assert_allclose(d, e, atol=1e-6)
        assert d[:, 2:].min() >= 0 and d[:, 2:].max() <= 128
        assert set(np.unique(d[:, 0])) <= set(range(24)) and (d[:, 1] > 0.01).all()
        assert (d[:, 4] >= d[:, 2]).all() and (d[:, 5] >= d[:, 3]).all()


# ---------------------------------------------------------------------------------------------------------------
# 12. bad input


def test_bad_input_errors():
    model = zoo.create_model("two_in_one_tiny")
    with pytest.raises(ValueError, match=r"stream='two_in_one'\) reads rgb and flow images; flow missing"):
        model(images(1), None)
    with pytest.raises(ValueError, match="input_size must be 300, not 128"):
        ActionSSD(trunk="vgg16", input_size=128)
    with pytest.raises(ValueError, match="appearance stream must be 'rgb' or 'two_in_one', not 'flow'"):
        TwoStreamSSD({**TINY, "stream": "flow"}, dict(TINY))
    with pytest.raises(ValueError, match="fusion must be one of mean, union, boost, not 'vote'"):
        TwoStreamSSD(dict(TINY), dict(TINY), fusion="vote")
    with pytest.raises(ValueError, match="stream must be one of rgb, flow, two_in_one, not 'depth'"):
        ActionSSD(**TINY, stream="depth")
    with pytest.raises(ValueError, match="the two streams must share input_size"):
        TwoStreamSSD(dict(TINY), {**TINY, "input_size": 96})


def test_decode_is_ssd_pytorch_decode():
    """ssd.pytorch ``decode``: centre = prior centre + loc * 0.1 * prior size, size = prior size * exp(loc * 0.2)."""
    from zoo.nn.multibox import decode

    torch.manual_seed(0)
    priors = prior_boxes(SSD300_PRIORS)
    loc = torch.randn(1, len(priors), 4)
    cxcy = priors[:, :2] + loc[0, :, :2] * 0.1 * priors[:, 2:]
    wh = priors[:, 2:] * torch.exp(loc[0, :, 2:] * 0.2)
    expected = torch.cat([cxcy - wh / 2, cxcy + wh / 2], 1)
    torch.testing.assert_close(decode(loc, priors)[0], expected, atol=1e-5, rtol=1e-5)


def test_imagenet_init_offline_is_one_clear_error(tmp_path, monkeypatch):
    from zoo.errors import DownloadError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    expected = r"VGG16_Weights.*ZOO_OFFLINE is set.*vgg16-397923af.pth and place the file by hand"
    with pytest.raises(DownloadError, match=expected):
        zoo.create_model("ssd300_rgb", pretrained_backbone=True)


def test_two_stream_builders_update_their_recipes():
    model = zoo.create_model("two_in_one_two_stream_tiny", num_classes=4, appearance={"lr": 0.01}, fusion="union")
    assert model.appearance.hparams.stream == "two_in_one" and model.appearance.hparams.lr == 0.01
    assert model.motion.hparams.stream == "flow" and model.motion.hparams.lr == 1e-3
    assert model.num_classes == 4 and model.motion.hparams.num_classes == 4 and model.hparams.fusion == "union"
    road = zoo.create_model("two_stream_ssd", appearance={"pretrained_backbone": False})
    assert tuple(road.appearance.hparams.milestones) == (30000, 60000, 90000)
    assert tuple(road.motion.hparams.milestones) == (70000, 90000) and road.motion.hparams.conf_thresh == 0.05
    with pytest.raises(ValueError, match="must share optimizer and momentum"):
        TwoStreamSSD(dict(TINY), {**TINY, "optimizer": "adam"})
    with pytest.raises(ValueError, match="one flow folder, not brox-images and fastOF-images"):
        TwoStreamSSD({**TINY, "stream": "two_in_one", "flow_folder": "fastOF-images"},
                     {**TINY, "flow_folder": "brox-images"})
