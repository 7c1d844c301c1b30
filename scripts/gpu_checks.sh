#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one device call (about 9 minutes on an H100/H200).
#
# Here, first: ../shared/tools/device-prep.sh   (kornia/optuna wheels into .whl/, Fashion-MNIST into .data/)
# Then on the device, carrying [".whl", ".data"]:   bash scripts/gpu_checks.sh
#
# bench_accuracy.py's `gpu` setting (ResNet-18, full Fashion-MNIST, every policy and every
# searcher's export trained by scripts/plain_train.py on the GPU) for every method, in two lanes
# that share the GPU: the searchers one after another, the fixed policies one after another.
# Each method is its own bench_accuracy call, so what finishes is kept; the runs live in
# runs/gpu/ (git-ignored), which a warm device machine keeps between calls: the same command
# again goes on where the last one stopped (a search resumes from its checkpoint). First the
# searchers' GPU step costs, last the table of every finished method, and Policy.apply's
# throughput if time is left.
#
# Environment (defaults in brackets): GPU_BUDGET_S [540] seconds this script may take;
# GPU_EPOCHS [8]; GPU_SEEDS [0]; GPU_DATA [.data/fashion-mnist]; GPU_EXTRA: more
# bench_accuracy flags (a smoke run on a CPU: "--train-size 500 --model small_cnn").
# Results go to $OUT (the device tool's folder that comes back), else results/gpu/.
set -u
cd "$(dirname "$0")/.."
start=$(date +%s)
budget=${GPU_BUDGET_S:-540}
epochs=${GPU_EPOCHS:-8}
seeds=${GPU_SEEDS:-0}
data=${GPU_DATA:-.data/fashion-mnist}
extra=${GPU_EXTRA:-}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export AUTOAUG_DATA="$PWD/.data" PYTHONUNBUFFERED=1
out="${OUT:-results/gpu}"
runs=runs/gpu/accuracy
mkdir -p "$out" "$runs"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"; nproc; } >"$out/table.log" 2>&1
# Each searcher's step against a plain step on the GPU, alone on it (ResNet-18, batch 128): the
# first table had mcmc's search epoch at 6.7x a plain epoch there (2x on two CPU cores).
if python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  timeout 120 python3 scripts/bench_search_cost.py --dataset fashion-mnist --space symmetry --model resnet18 \
    --device cuda --steps 10 --out "$out/search_cost.json" >>"$out/table.log" 2>&1 || echo "search cost: stopped" >>"$out/table.log"
fi
workers=$(( $(nproc) / 2 - 1 ))
[ "$workers" -ge 1 ] || workers=1
left() { echo $(( start + budget - 40 - $(date +%s) )); }  # 40 s kept for the table and the packing

lane() {  # methods one after another, each its own bench_accuracy call
  local log=$1
  shift
  for m in "$@"; do
    t=$(left)
    if [ "$t" -lt 30 ]; then echo "$m: not started, $t s left"; continue; fi
    echo "== $m ($t s left)"
    # shellcheck disable=SC2086
    timeout "$t" python3 scripts/bench_accuracy.py --setting gpu --methods "$m" --seeds "$seeds" \
      --epochs "$epochs" --plain-workers "$workers" --data-root "$data" --out "$runs" --quiet $extra \
      || echo "$m: failed or stopped (exit $?)"
  done >>"$out/$log" 2>&1
}
lane lane_search.log mcmc bilevel optuna &
lane lane_fixed.log none randaugment trivialaugment autoaugment hflip hflip-crop-erase &
wait

# The table of every method whose runs all finished (each is reused, nothing trains).
finished=""
for m in none hflip hflip-crop-erase randaugment trivialaugment autoaugment mcmc bilevel optuna; do
  all=1
  for s in ${seeds//,/ }; do [ -f "$runs/runs/${m}_s$s/plain.json" ] || all=0; done
  [ "$all" = 1 ] && finished="$finished,$m"
done
if [ -n "$finished" ]; then
  # shellcheck disable=SC2086
  timeout 60 python3 scripts/bench_accuracy.py --setting gpu --methods "${finished#,}" --seeds "$seeds" \
    --epochs "$epochs" --plain-workers "$workers" --data-root "$data" --out "$runs" --quiet $extra \
    >>"$out/table.log" 2>&1 && cp "$runs/results.json" "$runs/results.md" "$out/"
fi
tar czf "$out/runs.tgz" --exclude='*.pt' "$runs" 2>/dev/null

# Policy.apply on CUDA at 32×32 against the torchvision DataLoader (one worker per core), alone on the machine.
t=$(( start + budget - 5 - $(date +%s) ))
if [ "$t" -gt 60 ] && python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  timeout $(( t < 120 ? t : 120 )) python3 scripts/bench_throughput.py --sizes 32 --repeats 3 \
    --workers "$(nproc)" --out "$out/throughput.json" >>"$out/table.log" 2>&1 || echo "throughput: stopped" >>"$out/table.log"
fi
echo "gpu_checks: $(( $(date +%s) - start )) s" | tee -a "$out/table.log"
