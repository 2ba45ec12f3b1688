"""``zoo benchmark`` as a script, for the 2-process DDP run of tests/test_benchmark_classification.py (Lightning's
DDP launcher starts the second rank by running this file again).

Usage: python tests/ddp_classification.py benchmark ucf101 --checkpoint C --root R ... --devices 2
"""

from __future__ import annotations

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
