#!/usr/bin/env bash
# The one GPU session script: CUDA (and Vulkan) parity, then Burn and PyTorch on the same shapes.
#
# Prepared on the build machine (nothing is compiled on the GPU host):
#   benches/gpu/prepare.sh          # builds .gpu/ (bench + test binaries), .whl/, .gl/
# On the GPU host, from the repository root, with .gpu .whl .gl next to it:
#   OUT=/some/dir benches/gpu/run.sh [stages|kernels|all]
#     stages   CUDA parity (the tiny pipeline first), then the SDXL stages (UNet step, VAE decode,
#              encoder) on Burn `cuda-bf16` and PyTorch bf16: the short run for a 15-minute lease
#     kernels  the per-kernel table only, every backend;  all  everything (the default)
# Writes env.txt, parity.log, burn.jsonl, burn.err, torch.jsonl, mem_*.txt, autotune.log,
# cache.txt, report.md and cubecl-cache.tar.xz (see below) to $OUT.
#
# CubeCL compiles every kernel with NVRTC and autotunes every new shape on first use (tens of
# seconds per matmul shape on 2026-11-26). Its PTX and autotune caches go to $CUBECL_CACHE
# (one cubecl.toml in the repository root, written here), so each process after the first
# reuses what the earlier ones compiled and tuned. The cache comes back as cubecl-cache.tar.xz;
# unpacked into $CUBECL_CACHE on a later run with the same binaries and card, it skips both.
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
# One compilation + autotune cache for every process of this run (and later runs, if carried).
CUBECL_CACHE=${CUBECL_CACHE:-/tmp/cubecl-cache}
mkdir -p "$CUBECL_CACHE"
[ -f .gpu/cubecl-cache.tar.xz ] && tar -xJf .gpu/cubecl-cache.tar.xz -C "$CUBECL_CACHE"
cat >cubecl.toml <<TOML
[compilation]
cache = { file = "$CUBECL_CACHE" }
[autotune]
cache = { file = "$CUBECL_CACHE" }
[autotune.logger]
file = "$OUT/autotune.log"
level = "minimal"
TOML
cache_report() { # what the caches hold now: compiled kernels (PTX) and autotune files
  echo "$(date +%T) $1: $(find "$CUBECL_CACHE" -type f | wc -l) files," \
    "$(du -sh "$CUBECL_CACHE" | cut -f1)" >>"$OUT/cache.txt"
}
# Test binaries find their fixtures through the absolute path they were built in.
BUILT_IN=$(cat .gpu/built_in)
if [ "$BUILT_IN" != "$ROOT" ]; then mkdir -p "$(dirname "$BUILT_IN")" && ln -sfn "$ROOT" "$BUILT_IN"; fi

parity() { # time limit in seconds, then test-binary arguments (filters, --skip)
  local limit=$1
  shift
  log "parity $*"
  for t in .gpu/tests/*; do
    echo "--- $(basename "$t") $*" >>"$OUT/parity.log"
    timeout "$limit" "$t" "$@" --test-threads 1 --nocapture >>"$OUT/parity.log" 2>&1
    echo "exit $?" >>"$OUT/parity.log"
  done
  cache_report "after parity $*"
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
  cache_report "after burn $1"
  echo "peak used MiB: $(sort -n "$OUT/mem_burn_$1.txt" | tail -1)"
  tail -4 "$OUT/burn.err"
}
torch() { # dtype, time limit in seconds (default 90)
  log "torch $1"
  timeout "${2:-90}" python3 benches/gpu/torch_ref.py --dtype "$1" $ONLY >>"$OUT/torch.jsonl" 2>>"$OUT/torch.err"
  echo "torch $1 exit $?" >>"$OUT/torch.err"
}
finish() {
  python3 benches/gpu/report.py "$OUT/burn.jsonl" "$OUT/torch.jsonl" | tee "$OUT/report.md"
  tail -5 "$OUT/burn.err" "$OUT/torch.err"
  (cd "$CUBECL_CACHE" && tar -cf - . | xz -T0 -6 >"$OUT/cubecl-cache.tar.xz")
  cache_report "packed $(du -h "$OUT/cubecl-cache.tar.xz" | cut -f1)"
  cat "$OUT/cache.txt"
  log "done"
}
touch "$OUT/burn.jsonl" "$OUT/torch.jsonl" "$OUT/burn.err" "$OUT/torch.err"
if [ "$SCOPE" = stages ]; then
  # Correctness first: the tiny SDXL pipeline (f32 and bf16), then the other CUDA parity tests.
  parity "${PIPELINE_S:-100}" tiny_sdxl_pipeline_matches_diffusers_cuda
  parity "${PARITY_S:-90}" _cuda --skip tiny_sdxl_pipeline
  ONLY="--iters 5 --only unet_step,vae_decode,faceclip_encoder"
  burn cuda-bf16 "${BURN_S:-240}"
  torch bf16 "${TORCH_S:-60}"
  finish
  exit 0
fi
# Most important first: whatever finished is in $OUT even if the session's limit cuts the rest.
# Budgets in seconds (BURN_S, WGPU_S): on 2026-11-26 Burn's CUDA backend spent 30–53 s compiling
# and autotuning each new kernel shape on first use, so 110 s covered only two kernels.
parity "${PARITY_S:-60}" _cuda
burn cuda "${BURN_S:-110}"
torch bf16
torch f32
burn cuda-bf16 "${BURN_S:-90}"
parity "${PARITY_S:-60}" _wgpu
burn wgpu "${WGPU_S:-60}"
finish
