"""The fixed policies of issue 3 side by side (``none``, ``randaugment``, ``trivialaugment``,
``autoaugment``) on reduced Fashion-MNIST: ``bench_accuracy.py`` with those methods by default.

Run: python scripts/bench_baselines.py [--methods ...] [--out results/baselines] (the flags of
``bench_accuracy.py``)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import main

if __name__ == "__main__":
    main(sys.argv[1:] + ["--out", "results/baselines"] * ("--out" not in sys.argv),
         default_methods="none,randaugment,trivialaugment,autoaugment")  # fmt: skip
