#!/usr/bin/env bash
# The one GPU session script: CUDA (and Vulkan) parity, then Burn and PyTorch on the same shapes.
#
# Prepared on the build machine (nothing is compiled on the GPU host):
#   benches/gpu/prepare.sh          # builds .gpu/ (bench + test binaries), .whl/, .gl/
# On the GPU host, from the repository root, with .gpu .whl .gl next to it:
#   OUT=/some/dir benches/gpu/run.sh [kernels|all]
# Writes env.txt, parity.log, burn.jsonl, torch.jsonl, mem_*.txt and report.md to $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}
SCOPE=${1:-all}
mkdir -p "$OUT"
ROOT=$(pwd)
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.log"; }

log "environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version 2>/dev/null | tail -1
  python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'
  uname -r
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# Tools and libraries the binaries need at run time.
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
export LD_LIBRARY_PATH=$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}
# The binaries travel compressed (the working tree that travels is limited to 64 MiB).
[ -f .gpu/bins.tar.xz ] && tar -xJf .gpu/bins.tar.xz -C .gpu
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
# Test binaries find their fixtures through the absolute path they were built in.
BUILT_IN=$(cat .gpu/built_in)
if [ "$BUILT_IN" != "$ROOT" ]; then mkdir -p "$(dirname "$BUILT_IN")" && ln -sfn "$ROOT" "$BUILT_IN"; fi

parity() { # backend: every *_<backend> test of each test binary
  log "parity $1"
  for t in .gpu/tests/*; do
    echo "--- $(basename "$t") $1" >>"$OUT/parity.log"
    timeout "${PARITY_S:-60}" "$t" "_$1" --test-threads 1 --nocapture >>"$OUT/parity.log" 2>&1
    echo "exit $?" >>"$OUT/parity.log"
  done
  grep -E "^--- |relative L2|PSNR|test result|FAILED|panicked|^exit" "$OUT/parity.log" | tail -40
}

sample_memory() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$1" & }
ONLY="--iters 5"
[ "$SCOPE" = kernels ] && ONLY="$ONLY --only matmul,self,cross,conv,group"
burn() { # backend, time limit in seconds
  log "burn $1"
  sample_memory "$OUT/mem_burn_$1.txt"; SAMPLER=$!
  timeout "$2" .gpu/gpu --backend "$1" $ONLY >>"$OUT/burn.jsonl" 2>>"$OUT/burn.err"
  echo "burn $1 exit $?" >>"$OUT/burn.err"
  kill $SAMPLER
  echo "peak used MiB: $(sort -n "$OUT/mem_burn_$1.txt" | tail -1)"
}
torch() { # dtype
  log "torch $1"
  timeout 90 python3 benches/gpu/torch_ref.py --dtype "$1" $ONLY >>"$OUT/torch.jsonl" 2>>"$OUT/torch.err"
  echo "torch $1 exit $?" >>"$OUT/torch.err"
}
# Most important first: whatever finished is in $OUT even if the session's limit cuts the rest.
# Budgets in seconds (BURN_S, WGPU_S): on 2026-11-26 Burn's CUDA backend spent 30–53 s compiling
# and autotuning each new kernel shape on first use, so 110 s covered only two kernels.
parity cuda
burn cuda "${BURN_S:-110}"
torch bf16
torch f32
burn cuda-bf16 "${BURN_S:-90}"
parity wgpu
burn wgpu "${WGPU_S:-60}"
python3 benches/gpu/report.py "$OUT/burn.jsonl" "$OUT/torch.jsonl" | tee "$OUT/report.md"
tail -5 "$OUT/burn.err" "$OUT/torch.err"
log "done"
