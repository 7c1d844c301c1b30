#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one device run (about 8 minutes on an H100/H200).
#
# Here, first: ../shared/tools/device-prep.sh   (kornia/optuna wheels into .whl/, Fashion-MNIST into .data/)
# Then on the device, carrying [".whl", ".data"]:   bash scripts/gpu_checks.sh
# Results go to $OUT (the device tool's folder that comes back), else results/gpu/.
set -eu
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" AUTOAUG_DATA="$PWD/.data"
out="${OUT:-results/gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"

# Policy.apply on CUDA (batch 256 and large batches) against the torchvision DataLoader, one worker per core.
timeout 180 python3 scripts/bench_throughput.py --sizes 32,224 --workers "$(nproc)" --out "$out/throughput.json" || echo "throughput: failed or timed out"
# Each searcher's step against a plain step, bf16 autocast on CUDA.
timeout 150 python3 scripts/bench_search_cost.py --dataset fashion-mnist --space standard --device cuda \
  --out "$out/search_cost.json" || echo "search cost: failed or timed out"
# Accuracy on full Fashion-MNIST with ResNet-18: as many runs as fit (finished runs are kept and reused).
timeout 240 python3 scripts/bench_accuracy.py --setting gpu --methods none,trivialaugment,mcmc --seeds 0 \
  --epochs 10 --out "$out/accuracy" --quiet || echo "accuracy: stopped at its time limit (finished runs kept)"
find "$out" -name '*.pt' -delete
