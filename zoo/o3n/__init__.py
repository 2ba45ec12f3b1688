"""Odd-One-Out Networks (Fernando et al., CVPR 2017): self-supervised pretraining and fine-tuning."""

from zoo.o3n.encodings import dynamic_image, encode, stack_of_differences, sum_of_differences
from zoo.o3n.model import O3NClassifier, OddOneOut, fuse, o3n_alexnet, o3n_tiny

__all__ = [
    "O3NClassifier", "OddOneOut", "dynamic_image", "encode", "fuse", "o3n_alexnet", "o3n_tiny",
    "stack_of_differences", "sum_of_differences",
]
