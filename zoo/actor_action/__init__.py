"""Actor and action video segmentation from a sentence (Gavrilyuk et al., CVPR 2018)."""

from zoo.actor_action.model import ActorActionSegmentation, SentenceCNN, actor_action_i3d, actor_action_tiny

__all__ = ["ActorActionSegmentation", "SentenceCNN", "actor_action_i3d", "actor_action_tiny"]
