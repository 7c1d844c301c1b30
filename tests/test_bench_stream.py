"""scripts/bench_stream.py on a tiny generated folder: each way runs in its own process and
reports its images/s and peak memory (the full measurement is not run in the tests)."""

import importlib.util
import json
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_stream", ROOT / "scripts" / "bench_stream.py")
bench_stream = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_stream)


def test_the_generated_folder_mixes_sizes(tmp_path):
    folder = bench_stream.make_folder(tmp_path / "f", 12, 10, 40, classes=3)
    files = sorted(folder.glob("*/*.jpg"))
    assert len(files) == 12 and len({p.parent.name for p in files}) == 3
    assert len({Image.open(p).size for p in files}) > 6


def test_a_tiny_benchmark_measures_every_way(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--images", "24", "--min-px", "10", "--max-px", "40", "--size", "16", "--batch-size", "4",
            "--epochs", "1", "--workers", "0", "--device", "cpu", "--folder", str(tmp_path / "f"), "--out", str(out)]  # fmt: skip
    result = bench_stream.main(argv)
    assert json.loads(out.read_text()) == result
    assert [r["way"] for r in result["rows"]] == list(bench_stream.WAYS)
    for row in result["rows"]:
        assert row["images"] >= 16 and row["images_per_s"] > 0  # autoaug holds 20% out as its test split
        assert row["images"] <= 24 and row["images_per_s"] > 0 and row["peak_rss_mib"] > 50
