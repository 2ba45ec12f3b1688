"""A 2-process DDP OTB benchmark on CPU, run by tests/test_otb.py: the ranks split the sequences.

Usage: python tests/ddp_benchmark.py OTB_ROOT OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import zoo
from zoo.benchmark.tracking import benchmark_otb

if __name__ == "__main__":
    root, out = sys.argv[1:3]
    performance = benchmark_otb(zoo.load("identity_tracker", pretrained=False), root, out, allow_missing=True,
                                accelerator="cpu", devices=2, enable_progress_bar=False)
    if performance is not None:
        (Path(out) / "rank0.json").write_text(json.dumps(performance["IdentityTracker"]["overall"]))
