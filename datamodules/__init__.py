"""Datasets, video reading and synthetic data of the zoo.

``zoo`` is imported first: its model registry imports some of these modules, so loading it here, before any of
them, keeps ``import datamodules.video`` (or any other module first) free of a circular import.
"""

import zoo  # noqa: F401
