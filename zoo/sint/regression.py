"""SINT's bounding-box regression (Sec. 4.2): ridge regressors on conv4_3 RoI features with the R-CNN
targets (Girshick et al., CVPR 2014, appendix C), fitted on first-frame samples."""

from __future__ import annotations

import numpy as np
import torch


def rcnn_targets(proposals: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(tx, ty, log tw, log th) taking (N, 4) x, y, w, h proposals to the box ``gt``."""
    p = np.asarray(proposals, dtype=np.float64)
    pcx, pcy = p[:, 0] + p[:, 2] / 2, p[:, 1] + p[:, 3] / 2
    gcx, gcy = gt[0] + gt[2] / 2, gt[1] + gt[3] / 2
    return np.stack([(gcx - pcx) / p[:, 2], (gcy - pcy) / p[:, 3], np.log(gt[2] / p[:, 2]), np.log(gt[3] / p[:, 3])], 1)


def apply_targets(box: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Move one x, y, w, h box by R-CNN deltas."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    cx, cy = cx + t[0] * box[2], cy + t[1] * box[3]
    w, h = box[2] * np.exp(t[2]), box[3] * np.exp(t[3])
    return np.array([cx - w / 2, cy - h / 2, w, h])


class RidgeRegressor:
    """Y ~ X W (+ b) minimising |Y - X W - b|^2 + ``alpha`` |W|^2, solved in the dual (few samples, many features).

    Defaults as the released tracker's ``Ridge(alpha=1, fit_intercept=False)`` (``run_SINT_OTB.py``).
    """

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = False) -> None:
        self.alpha, self.fit_intercept = alpha, fit_intercept
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> RidgeRegressor:
        x, y = x.double(), y.double()
        self.mean = x.mean(0, keepdim=True) if self.fit_intercept else torch.zeros_like(x[:1])
        self.bias = y.mean(0, keepdim=True) if self.fit_intercept else torch.zeros_like(y[:1])
        xc = x - self.mean
        gram = xc @ xc.T + self.alpha * torch.eye(len(x), dtype=x.dtype, device=x.device)
        self.weight = xc.T @ torch.linalg.solve(gram, y - self.bias)
        return self

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (x.double() - self.mean) @ self.weight + self.bias
