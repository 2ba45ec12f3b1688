"""Shared fixtures: the real samples in ../shared/data, and small synthetic datasets made per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real data folder; tests that need it skip with a reason when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"real sample data not found at {SHARED} (see ../shared/README.md)")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Every test gets its own zoo cache and torch hub folder, and never touches ~/.cache."""
    home = tmp_path_factory.mktemp("zoo_home")
    monkeypatch.setenv("ZOO_HOME", str(home / "zoo"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def synth_ucf101(tmp_path_factory) -> Path:
    """A synthetic UCF101 (7 motion classes, 140 videos, 64x80 frames, 24 frames each)."""
    from datamodules.synthetic import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("synth") / "ucf101"
    cfg = SynthConfig(height=64, width=80, num_frames=24, min_size=5, max_size=10)
    return synthesize("ucf101", out, num_videos=140, seed=1, cfg=cfg)
