"""One-pass evaluation (OPE) of single-object trackers, as in the OTB benchmark (Wu, Lim, Yang, CVPR 2013
and TPAMI 2015), with the conventions of the public toolkits as a switch.

Success curve: the fraction of frames whose IoU is **greater than** each of the 21 thresholds 0:0.05:1;
its mean is the AUC (success score). Precision curve: the fraction of frames whose centre error is at
most t px, t = 0..50; the precision score is its value at 20 px. Normalised precision: the centre error
divided by the ground-truth size, thresholds 0:0.01:0.5, score at 0.2 (as pytracking and pysot report
it). Curves are computed per sequence and averaged over sequences.

The toolkits differ in these details (``otb`` reproduces the published OTB numbers, see the tests;
the other columns follow each toolkit's code as read, and are not checked against their own output):

| detail | ``otb`` (MATLAB toolkit, default) | ``got10k`` | ``pytracking`` | ``pysot`` |
|---|---|---|---|---|
| IoU of pixel boxes | +1 pixel (``x2 = x + w - 1``) | continuous | +1 pixel | continuous |
|  | (the two forms are algebraically equal: ``min(x+w-1) - max(x) + 1 = min(x+w) - max(x)``) | | | |
| first frame | ground truth | ground truth | ground truth | the tracker's |
| invalid result (NaN, w or h <= 0) | previous box | failure | zero size: previous box; NaN or < 0: rejected | failure |
| result shorter than ground truth | last box repeated | rejected | zero boxes | rejected |
| result longer | truncated | rejected | truncated | rejected |
| invalid ground truth | any value <= 0 (*) | scored as is | w or h <= 0: never a success | w or h <= 0 (*) |
| Tiger1 | from frame 6 (``initOmit`` 5) | all 354 frames | from frame 6 | all 354 frames |

(*) IoU never succeeds, but the centre error (set to -1) always counts as a success, as in the OTB
toolkit's ``calcSeqErrRobust`` and pysot. Frames with invalid ground truth stay in the denominator in
every convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchmetrics import Metric

from zoo.errors import DatasetError

SUCCESS_THRESHOLDS = torch.linspace(0, 1, 21, dtype=torch.float64)
PRECISION_THRESHOLDS = torch.arange(0, 51, dtype=torch.float64)
NORM_PRECISION_THRESHOLDS = torch.arange(0, 51, dtype=torch.float64) / 100
PRECISION_AT = 20  # index of 20 px
NORM_PRECISION_AT = 20  # index of 0.2


@dataclass(frozen=True)
class Convention:
    """How a toolkit turns result and ground-truth boxes into scores (see the module table)."""

    name: str
    iou_plus_one: bool
    first_frame_gt: bool
    invalid_result: str  # "previous" | "fail" | "zero_previous_else_reject"
    short_result: str  # "repeat_last" | "zeros" | "reject"
    long_result: str  # "truncate" | "reject"
    invalid_gt: str  # "otb" | "none" | "wh_fail" | "wh_error_success"
    init_omit: bool  # honour the table's init_omit_frames (Tiger1)


CONVENTIONS: dict[str, Convention] = {
    "otb": Convention("otb", True, True, "previous", "repeat_last", "truncate", "otb", True),
    "got10k": Convention("got10k", False, True, "fail", "reject", "reject", "none", False),
    "pytracking": Convention(
        "pytracking", True, True, "zero_previous_else_reject", "zeros", "truncate", "wh_fail", True
    ),
    "pysot": Convention("pysot", False, False, "fail", "reject", "reject", "wh_error_success", False),
}


def get_convention(name: str | Convention) -> Convention:
    if isinstance(name, Convention):
        return name
    if name not in CONVENTIONS:
        raise ValueError(f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}")
    return CONVENTIONS[name]


def iou(a: torch.Tensor, b: torch.Tensor, plus_one: bool = True) -> torch.Tensor:
    """IoU of (N, 4) x, y, w, h boxes; ``plus_one`` counts pixels as the OTB toolkit does."""
    one = 1.0 if plus_one else 0.0
    x1 = torch.maximum(a[:, 0], b[:, 0])
    y1 = torch.maximum(a[:, 1], b[:, 1])
    x2 = torch.minimum(a[:, 0] + a[:, 2] - one, b[:, 0] + b[:, 2] - one)
    y2 = torch.minimum(a[:, 1] + a[:, 3] - one, b[:, 1] + b[:, 3] - one)
    inter = (x2 - x1 + one).clamp(min=0) * (y2 - y1 + one).clamp(min=0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    out = inter / union.clamp(min=torch.finfo(union.dtype).eps)
    return out.clamp(0, 1)


def centers(boxes: torch.Tensor) -> torch.Tensor:
    """Box centres with the toolkits' ``x + (w - 1) / 2``."""
    return boxes[:, :2] + (boxes[:, 2:] - 1) / 2


def center_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between box centres, in pixels."""
    return (centers(a) - centers(b)).pow(2).sum(1).sqrt()


def normalized_center_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Centre error with each axis divided by the ground-truth size (TrackingNet)."""
    size = gt[:, 2:].clamp(min=torch.finfo(gt.dtype).eps)
    return ((centers(pred) - centers(gt)) / size).pow(2).sum(1).sqrt()


def align(
    pred: torch.Tensor,
    gt: torch.Tensor,
    convention: str | Convention = "otb",
    init_omit: int = 0,
    source: str = "result",
    lines: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a convention's rules on lengths, skipped first frames and invalid results.

    Returns (pred, gt) of equal length, ready for ``frame_scores``; a rejected file raises
    DatasetError naming ``source`` and the line.
    """
    conv = get_convention(convention)
    pred = pred.to(torch.float64).clone()
    gt = gt.to(torch.float64)
    lines = lines or list(range(1, len(pred) + 1))
    if conv.init_omit and init_omit:
        if len(pred) == len(gt):
            pred, lines = pred[init_omit:], lines[init_omit:]
        gt = gt[init_omit:]
    if len(pred) < len(gt):
        if conv.short_result == "reject" or len(pred) == 0:
            raise DatasetError(
                f"{source}: {len(pred)} boxes for {len(gt)} ground-truth frames ({conv.name} convention)"
            )
        missing = len(gt) - len(pred)
        fill = pred[-1:].expand(missing, 4) if conv.short_result == "repeat_last" else pred.new_zeros(missing, 4)
        pred = torch.cat([pred, fill])
        lines = lines + [lines[-1]] * missing
    elif len(pred) > len(gt):
        if conv.long_result == "reject":
            raise DatasetError(
                f"{source}: {len(pred)} boxes for {len(gt)} ground-truth frames ({conv.name} convention)"
            )
        pred, lines = pred[: len(gt)], lines[: len(gt)]
    bad = torch.isnan(pred).any(1) | (pred[:, 2] <= 0) | (pred[:, 3] <= 0)
    if conv.invalid_result == "zero_previous_else_reject":
        reject = torch.isnan(pred).any(1) | (pred[:, 2] < 0) | (pred[:, 3] < 0)
        if reject.any():
            i = int(torch.nonzero(reject)[0])
            raise DatasetError(f"{source}:{lines[i]}: invalid box {pred[i].tolist()} ({conv.name} convention)")
    if conv.invalid_result in ("previous", "zero_previous_else_reject"):
        gt_known = ~torch.isnan(gt).any(1)
        for i in torch.nonzero(bad[1:] & gt_known[1:]).flatten().tolist():
            pred[i + 1] = pred[i]
    if conv.first_frame_gt:
        pred[0] = gt[0]
    return pred, gt


def frame_scores(
    pred: torch.Tensor, gt: torch.Tensor, convention: str | Convention = "otb"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-frame IoU, centre error and normalised centre error of aligned boxes.

    Frames whose ground truth the convention calls invalid get IoU -1 (never a success) and a centre
    error of -1 (always a success, as in the OTB toolkit and pysot) or +inf (never, pytracking).
    Invalid results scored as failures (got10k, pysot) get IoU 0 and an infinite error.
    """
    conv = get_convention(convention)
    pred, gt = pred.to(torch.float64), gt.to(torch.float64)
    ious = iou(pred, gt, conv.iou_plus_one)
    err = center_error(pred, gt)
    norm = normalized_center_error(pred, gt)
    failed = torch.isnan(pred).any(1) | (pred[:, 2] <= 0) | (pred[:, 3] <= 0)
    ious = torch.where(failed | torch.isnan(ious), torch.zeros_like(ious), ious)
    err = torch.where(failed | torch.isnan(err), torch.full_like(err, float("inf")), err)
    norm = torch.where(failed | torch.isnan(norm), torch.full_like(norm, float("inf")), norm)
    if conv.invalid_gt == "otb":
        invalid = ~(gt > 0).all(1)
        err_value = -1.0
    elif conv.invalid_gt == "wh_fail":
        invalid = ~(gt[:, 2:] > 0).all(1)
        err_value = float("inf")
    elif conv.invalid_gt == "wh_error_success":
        invalid = ~(gt[:, 2:] > 0).all(1)
        err_value = -1.0
    else:
        invalid = torch.isnan(gt).any(1)
        err_value = float("inf")
    ious = torch.where(invalid, torch.full_like(ious, -1.0), ious)
    err = torch.where(invalid, torch.full_like(err, err_value), err)
    norm = torch.where(invalid, torch.full_like(norm, err_value), norm)
    return ious, err, norm


def curves(
    ious: torch.Tensor, err: torch.Tensor, norm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Success (21), precision (51) and normalised precision (51) curves of one sequence."""
    n = max(len(ious), 1)

    def rate(hits: torch.Tensor) -> torch.Tensor:
        return hits.sum(0).to(torch.float64) / n

    success = rate(ious[:, None] > SUCCESS_THRESHOLDS.to(ious.device)[None])
    precision = rate(err[:, None] <= PRECISION_THRESHOLDS.to(err.device)[None])
    norm_precision = rate(norm[:, None] <= NORM_PRECISION_THRESHOLDS.to(norm.device)[None])
    return success, precision, norm_precision


def sequence_curves(
    pred: torch.Tensor, gt: torch.Tensor, convention: str | Convention = "otb", init_omit: int = 0, source: str = ""
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``align`` + ``frame_scores`` + ``curves`` for one sequence."""
    pred, gt = align(torch.as_tensor(pred), torch.as_tensor(gt), convention, init_omit, source or "result")
    return curves(*frame_scores(pred, gt, convention))


def summarize(success: torch.Tensor, precision: torch.Tensor, norm_precision: torch.Tensor) -> dict[str, float | list]:
    """Scores of curves averaged over sequences: (S, 21), (S, 51), (S, 51) -> overall numbers."""
    s, p, n = success.mean(0), precision.mean(0), norm_precision.mean(0)
    return {
        "success_curve": s.tolist(),
        "precision_curve": p.tolist(),
        "normalized_precision_curve": n.tolist(),
        "success_score": float(s.mean()),
        "precision_score": float(p[PRECISION_AT]),
        "normalized_precision_score": float(n[NORM_PRECISION_AT]),
        "success_rate": float(s[len(s) // 2]),
    }


class OTBMetrics(Metric):
    """OPE success / precision over sequences, one ``update(pred, target)`` per sequence.

    The per-sequence curves are kept as states reduced by concatenation, so ``compute`` gives the same
    numbers whether the sequences were scored on one rank or split across DDP ranks.
    """

    full_state_update = False

    def __init__(self, convention: str | Convention = "otb", **kwargs) -> None:
        super().__init__(**kwargs)
        self._convention = get_convention(convention)  # a Convention keeps its own rules (e.g. first_frame_gt)
        self.convention = self._convention.name
        self.add_state("success", default=[], dist_reduce_fx="cat")
        self.add_state("precision", default=[], dist_reduce_fx="cat")
        self.add_state("norm_precision", default=[], dist_reduce_fx="cat")

    def update(self, pred: torch.Tensor, target: torch.Tensor, init_omit: int = 0) -> None:
        s, p, n = sequence_curves(pred.detach().cpu(), target.detach().cpu(), self._convention, init_omit)
        self.success.append(s[None].to(self.device))
        self.precision.append(p[None].to(self.device))
        self.norm_precision.append(n[None].to(self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        def cat(x):
            return torch.cat(x) if isinstance(x, list) else x

        scores = summarize(cat(self.success), cat(self.precision), cat(self.norm_precision))
        keys = ("success_score", "precision_score", "normalized_precision_score", "success_rate")
        return {k: torch.tensor(scores[k], dtype=torch.float64) for k in keys}
