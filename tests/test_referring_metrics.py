"""Referring segmentation metrics (Gavrilyuk et al., CVPR 2018; COCO mAP as MTTR): hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.utilities import dim_zero_cat

from zoo.metrics import ReferringSegmentationMetrics, coco_stats, coco_stats_from_masks, paper_map, precision_at
from zoo.metrics.referring import MAP_THRESHOLDS, SUMMARY_COLUMNS


def _mask(h: int, w: int, rows=slice(0, 0), cols=slice(0, 0)) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[rows, cols] = True
    return m


def _samples():
    """(pred, gt) of different sizes; IoUs 2/3, 0.6 (exactly), 0 (empty prediction), empty union, 1."""
    return [
        (_mask(4, 4, slice(0, 2), slice(0, 3)), _mask(4, 4, slice(0, 2), slice(0, 2))),  # I 4, U 6
        (_mask(5, 3, slice(0, 3), slice(0, 1)), _mask(5, 3, slice(0, 5), slice(0, 1))),  # I 3, U 5
        (_mask(4, 4), _mask(4, 4, slice(1, 2), slice(1, 2))),  # I 0, U 1
        (_mask(3, 5), _mask(3, 5)),  # I 0, U 0
        (_mask(5, 3, slice(0, 5), slice(0, 3)), _mask(5, 3, slice(0, 5), slice(0, 3))),  # I 15, U 15
    ]


SCORES = [0.9, 0.8, 0.7, 0.6, 0.5]


def _metric(samples, first: int = 0, **kwargs) -> ReferringSegmentationMetrics:
    """One update with samples[first:], scored SCORES[first:] and numbered from ``first``."""
    m = ReferringSegmentationMetrics(**kwargs)
    preds, gts = zip(*samples[first:])
    m.update(list(preds), list(gts), scores=SCORES[first : len(samples)], ids=list(range(first, len(samples))))
    return m


def test_hand_computed_ious_precision_and_overall_vs_mean():
    out = _metric(_samples()).compute()
    assert out["ious"] == pytest.approx([2 / 3, 0.6, 0.0, 1.0, 1.0])
    # strictly greater: the IoU of exactly 0.6 is not a success at 0.6
    assert [float(out[f"P@{k}"]) for k in (0.5, 0.6, 0.7, 0.8, 0.9)] == pytest.approx([0.8, 0.6, 0.4, 0.4, 0.4])
    assert float(out["overall_iou"]) == pytest.approx(22 / 27)
    assert float(out["mean_iou"]) == pytest.approx((2 / 3 + 0.6 + 2) / 5)
    # thresholds 0.50, 0.55: 4 samples above; 0.60, 0.65: 3; 0.70..0.95: 2
    assert float(out["map_paper"]) == pytest.approx((4 + 4 + 3 + 3 + 2 * 6) / 50)
    assert float(out["map_paper"]) == pytest.approx(
        float(precision_at(torch.tensor(out["ious"], dtype=torch.float64), MAP_THRESHOLDS).mean())
    )
    assert out["ids"] == [0, 1, 2, 3, 4]
    assert list(out["summary"]) == list(SUMMARY_COLUMNS)
    assert list(out["summary"].values()) == pytest.approx([0.8, 0.6, 0.4, 0.4, 0.4, 0.52, 22 / 27, 3.2666667 / 5])

    zero = _metric(_samples(), empty_union_iou=0.0).compute()
    assert zero["ious"] == pytest.approx([2 / 3, 0.6, 0.0, 0.0, 1.0])
    assert float(zero["mean_iou"]) == pytest.approx((2 / 3 + 0.6 + 1) / 5)
    assert float(zero["overall_iou"]) == pytest.approx(22 / 27)  # an empty union adds nothing to the totals


def test_probability_maps_batches_and_default_scores():
    prob = torch.tensor([[0.9, 0.7, 0.5], [0.2, 0.6, 0.1]])  # > 0.5: 3 pixels, mean 0.7333
    gt = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    m = ReferringSegmentationMetrics(coco=False)
    m.update(prob, gt)
    m.update(torch.ones(2, 3, 4, dtype=torch.uint8), torch.ones(2, 3, 4, dtype=torch.bool))  # an (N, H, W) batch
    assert dim_zero_cat(m.scores).tolist() == pytest.approx([2.2 / 3, 1.0, 1.0])
    assert m.compute()["ious"] == pytest.approx([2 / 3, 1.0, 1.0])
    strict = ReferringSegmentationMetrics(threshold=0.8, coco=False)
    strict.update(prob, gt)
    assert strict.compute()["ious"] == pytest.approx([0.5])


def test_bad_inputs():
    m = ReferringSegmentationMetrics()
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        m.update(torch.zeros(4, 4, dtype=torch.bool), torch.zeros(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="2 predictions for 1"):
        m.update([torch.zeros(2, 2)] * 2, [torch.zeros(2, 2)])
    with pytest.raises(ValueError, match="1 scores for 2 samples"):
        m.update([torch.zeros(2, 2)] * 2, [torch.zeros(2, 2)] * 2, scores=[0.5])
    with pytest.raises(ValueError, match="no samples"):
        m.compute()


def _interpolate(p: list[float]) -> list[float]:
    """P@0.5..0.9 -> P@0.50:0.05:0.95, linear in between and P@0.95 = 0."""
    return [v for a, b in zip(p, p[1:] + [0.0]) for v in (a, (a + b) / 2)][:-1] + [0.0]


def test_paper_map_matches_published_table():
    # Gavrilyuk et al., CVPR 2018, A2D Sentences table: (P@0.5..0.9, mAP 0.5:0.95)
    for p, published in (([47.5, 34.7, 21.1, 8.0, 0.2], 19.8), ([34.8, 23.6, 13.3, 3.3, 0.1], 13.2)):
        curve = _interpolate(p)
        assert len(curve) == 10 and curve[::2] == p
        assert abs(np.mean(curve) - published) < 0.2
    # and paper_map is that mean for real IoUs
    ious = torch.tensor([0.52, 0.58, 0.71, 0.93, 0.3, 0.96])
    by_hand = np.mean([np.mean([float(i) > t for i in ious]) for t in np.arange(10) * 0.05 + 0.5])
    assert float(paper_map(ious)) == pytest.approx(by_hand)


def test_coco_map_perfect_and_score_order(capsys):
    gt = _mask(4, 5, slice(0, 2), slice(0, 5))  # 10 pixels
    perfect = [(gt, gt), (_mask(3, 3, slice(0, 3), slice(0, 1)),) * 2]
    out = _metric(perfect).compute()
    assert float(out["map_coco"]) == pytest.approx(1.0)

    bad = _mask(4, 5, slice(1, 3), slice(0, 5))  # I 5, U 15: IoU 1/3, a false positive at every threshold
    samples = [(bad, gt), (gt, gt)]
    m = ReferringSegmentationMetrics()
    m.update(*map(list, zip(*samples)), scores=[0.9, 0.1])
    # ranked FP, TP of 2 ground truths: recall [0, .5], precision [0, .5] -> interpolated 0.5 for recall 0..0.5,
    # i.e. 51 of COCO's 101 recall points, and 0 beyond
    assert float(m.compute()["map_coco"]) == pytest.approx(0.5 * 51 / 101)
    m = ReferringSegmentationMetrics()
    m.update(*map(list, zip(*samples)), scores=[0.1, 0.9])
    assert float(m.compute()["map_coco"]) == pytest.approx(51 / 101)
    assert capsys.readouterr().out == ""  # COCOeval's prints are silenced


def test_coco_from_counts_equals_coco_on_masks():
    samples = _samples() + [
        (_mask(30, 40, slice(2, 20), slice(5, 35)), _mask(30, 40, slice(4, 22), slice(3, 30))),
        (_mask(6, 7, slice(0, 6), slice(0, 2)), _mask(6, 7, slice(0, 3), slice(0, 7))),
    ]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.3]
    preds, gts = zip(*samples)
    m = ReferringSegmentationMetrics()
    m.update(list(preds), list(gts), scores=scores)
    st = [dim_zero_cat(s) for s in (m.intersection, m.union, m.gt_area, m.scores)]
    np.testing.assert_allclose(coco_stats(*st), coco_stats_from_masks(preds, gts, scores))
    # an empty prediction alone scores 0
    empty = ReferringSegmentationMetrics()
    empty.update(_mask(4, 4), _mask(4, 4, slice(0, 2), slice(0, 2)), scores=0.5)
    assert float(empty.compute()["map_coco"]) == 0.0


def _halves():
    samples = _samples()
    return _metric(samples), _metric(samples[:2]), _metric(samples, first=2)


def _same(full: dict, merged: dict) -> None:
    for k, v in full.items():
        if k in ("ious", "ids"):
            continue
        if k == "summary":
            assert merged[k] == pytest.approx(v)
        else:
            assert torch.allclose(merged[k], v), k
    by_id = dict(zip(merged["ids"], merged["ious"]))
    assert [by_id[i] for i in full["ids"]] == pytest.approx(full["ious"])


def test_merge_state_matches_one_metric():
    full, a, b = _halves()
    a.merge_state(b)
    _same(full.compute(), a.compute())


def test_ddp_gather_matches_one_metric():
    """The states' own DDP reduction (gather + cat), with a fake all-gather of two ranks."""
    full, a, b = _halves()
    other = iter([dim_zero_cat(getattr(b, name)) for name in a._reductions])
    a.distributed_available_fn = lambda: True
    a.dist_sync_fn = lambda t, group=None: [t, next(other)]
    _same(full.compute(), a.compute())
