#!/usr/bin/env bash
# The one GPU session script: CUDA (and Vulkan) parity, then Burn and PyTorch on the same shapes.
#
# Prepared on the build machine (nothing is compiled on the GPU host):
#   benches/gpu/prepare.sh          # builds .gpu/ (bench + test binaries), .whl/, .gl/
# On the GPU host, from the repository root, with .gpu .whl .gl next to it:
#   OUT=/some/dir benches/gpu/run.sh [stages|kernels|all]
#     stages   the short run for a 15-minute lease: a parallel warm-up (the UNet's levels 1 and 2,
#              VAE decode, encoder and FLUX step on Burn `cuda-bf16`, and the CUDA parity tests
#              in eight groups), then the stages (UNet step, VAE decode, encoder, the UNet's
#              levels, the whole 50-step image, FLUX step) timed on Burn `cuda-bf16` and
#              PyTorch bf16, then the per-kernel table on both
#     wgpu     item 6 alone: the stages on Burn `wgpu` (f32 on Vulkan), then the same on Burn
#              `cuda` (f32) and PyTorch f32 beside it, then the wgpu parity tests (binaries
#              built with GPU_FEATURES=vulkan,cuda prepare.sh); WGPU_ONLY picks the stages
#     kernels  the per-kernel table only, every backend;  all  everything (the default)
# Time limits (seconds) come from WARM_S, PARITY_S, BURN_S, WGPU_S and TORCH_S (and, for the
# kernel table of `stages`, BURN_KERNELS_S and TORCH_KERNELS_S, 0 to skip it; TORCH_ONLY, the
# PyTorch stages' list (comma-separated cases) where it differs from Burn's; PERF_S, where perf
# is installed, for a host profile of Burn's narrow UNet step, `perf-unet_overhead.txt`).
# BURN_MEMORY=fitted times Burn's CUDA backends with their memory pool laid out by
# `CudaMemoryPools::Fitted`, BURN_LAYOUT=pitched with CubeCL's padded rows instead of dense
# tensors, BURN_CONV=graph with the convolutions on cuDNN's graph API, BURN_CALLS=queued with
# the NVIDIA libraries' calls queued on CubeCL's device thread without waiting. `stages` also
# times the library-bound cases (`launch`, UNet step, VAE decode, encoder, FLUX step) with
# BURN_CALLS=queued for QUEUED_S seconds (default 60; 0 skips), rows named `<case>_queued`; the
# convolution cases (`launch_conv`, `vae_decode`) with BURN_CONV=graph for GRAPH_CONV_S seconds
# (default 40; 0 skips), rows `<case>_conv_graph`; and the UNet step and the VAE decode with
# BURN_MEMORY=fitted for FITTED_S seconds (default 60; 0 skips), rows `<case>_fitted`.
#
# It writes six to eight files to $OUT (the device tool returns at most 8, 16 MiB each): run.log
# (environment, steps, the binaries' stderr, cache sizes, peak GPU memory per phase),
# results.jsonl (one JSON line per timed case, Burn and PyTorch), parity.log, report.md (the
# merged table), autotune-summary.md (every autotuned shape: candidates, winner, failures),
# perf-unet_overhead.txt (with PERF_S, where perf runs) and cubecl-cache.tar.xz — or, over
# 15 MiB, its pieces cubecl-cache.tar.xz.part0, .part1 (join them with `cat` into
# .gpu/cubecl-cache.tar.xz).
#
# CubeCL compiles every kernel with NVRTC and autotunes every new shape on first use: on
# 2026-11-26 (H100) each matmul shape compiled and timed 29 candidates, each conv shape 8, at
# about 0.8 s of host time per kernel with the GPU idle. Its PTX and autotune caches go to
# $CUBECL_CACHE (one cubecl.toml in the repository root, written here), so each process reuses
# what the earlier ones compiled and tuned; a process reads the caches when it starts, so two
# running at once tune a shared shape twice: `warm` splits the work by stage. The cache comes
# back in $OUT; kept as .gpu/cubecl-cache.tar.xz (prepare.sh leaves it there), the next run
# starts from it.
set -u
OUT=${OUT:-/tmp/gpu-out}
SCOPE=${1:-all}
mkdir -p "$OUT"
ROOT=$(pwd)
RUN_LOG=$OUT/run.log
RESULTS=$OUT/results.jsonl
log() { echo "== $(date +%T) $*" | tee -a "$RUN_LOG"; }

log "environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version 2>/dev/null | tail -1
  python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'
  uname -r
  echo "profilers: $(command -v perf nsys ncu gdb | tr '\n' ' ')"
  echo "binaries: $(cat .gpu/commit 2>/dev/null || echo 'commit not recorded'), features" \
    "$(cat .gpu/features 2>/dev/null)"
} 2>&1 | tee -a "$RUN_LOG"

# Tools and libraries the binaries need at run time.
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
export LD_LIBRARY_PATH=$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}
# cuBLASLt and cuDNN, which the linear layers, convolutions and attention load at run time, and
# NVRTC, which cuDNN loads for its runtime-compiled (fused attention) engines: the toolkit's,
# else those PyTorch's `nvidia-*` wheels ship.
dir=
for lib in cublasLt cudnn nvrtc; do
  if ! ls "$CUDA_PATH"/lib64/lib$lib.so* >/dev/null 2>&1; then
    dir=$(LIB=$lib python3 - <<'PY' 2>/dev/null
import glob, os, site
lib = os.environ["LIB"]
hits = [p for d in site.getsitepackages() + [site.getusersitepackages()]
        for p in glob.glob(os.path.join(d, "nvidia", "**", f"lib{lib}.so*"), recursive=True)]
print(os.path.dirname(sorted(hits)[0]) if hits else "")
PY
    )
    [ -n "$dir" ] && export LD_LIBRARY_PATH=$dir:$LD_LIBRARY_PATH
  fi
  echo "$lib: $(find "$CUDA_PATH/lib64" ${dir:+"$dir"} -maxdepth 1 -name "lib$lib.so*" 2>/dev/null |
    tr '\n' ' ')" | tee -a "$RUN_LOG"
  dir=
done
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
TOML
# The driver's own cache of PTX compiled to machine code (not carried: its size is measured, to
# see whether carrying it would be worth the room).
export CUDA_CACHE_PATH=/tmp/nv-jit-cache CUDA_CACHE_MAXSIZE=4294967296
cache_report() { # what the cache holds now: compiled kernels (PTX) and autotuned shapes
  local toc=$CUBECL_CACHE/cuda/0.10.0/ptx/toc.json.log
  echo "$(date +%T) cache $1: $(cat "$toc" 2>/dev/null | grep -c .) kernels," \
    "$(du -sh "$CUBECL_CACHE" | cut -f1); driver JIT cache" \
    "$(du -sh "$CUDA_CACHE_PATH" 2>/dev/null | cut -f1)" | tee -a "$RUN_LOG"
}
cache_report "at start"

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
  grep -E "^--- |relative L2|PSNR|cuBLASLt|cuDNN|test result|FAILED|panicked|^exit" "$OUT/parity.log" | tail -40
}

MEM=/tmp/gpu-mem.txt
sample_memory() { # phase: GPU memory used every 200 ms, as "phase MiB" lines in $MEM
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 |
    sed -u "s/^/$1 /" >>"$MEM" &
}
ONLY="--iters 5"
[ "$SCOPE" = kernels ] && ONLY="$ONLY --only matmul,linear,self,cross,conv,group,layernorm"
burn() { # backend, time limit in seconds
  log "burn $1"
  sample_memory "$1"
  SAMPLER=$!
  timeout "$2" .gpu/gpu --backend "$1" $ONLY ${BURN_MEMORY:+--memory "$BURN_MEMORY"} \
    ${BURN_LAYOUT:+--layout "$BURN_LAYOUT"} ${BURN_CONV:+--conv "$BURN_CONV"} \
    ${BURN_CALLS:+--calls "$BURN_CALLS"} >>"$RESULTS" 2>>"$RUN_LOG"
  echo "burn $1 exit $?" | tee -a "$RUN_LOG"
  pkill -f "nvidia-smi --query-gpu=memory.used" || kill $SAMPLER
  cache_report "after burn $1"
  peak_memory "$1"
}
profile_host() { # case, time limit in seconds: where the host's time goes, when perf runs here
  command -v perf >/dev/null || { log "no perf on this host: $1 not profiled"; return; }
  log "perf $1"
  timeout "$2" perf record -F 999 -o /tmp/perf.data -- .gpu/gpu --backend cuda-bf16 --only "$1" \
    --warmup 1 --iters 20 >/dev/null 2>>"$RUN_LOG"
  echo "perf record exit $?" | tee -a "$RUN_LOG"
  {
    perf report -i /tmp/perf.data --stdio --no-children --sort comm --percent-limit 1
    perf report -i /tmp/perf.data --stdio --no-children --sort comm,dso,symbol --percent-limit 0.3
  } >"$OUT/perf-$1.txt" 2>&1
  head -40 "$OUT/perf-$1.txt"
}
torch() { # dtype, time limit in seconds (default 90)
  log "torch $1"
  timeout "${2:-90}" python3 benches/gpu/torch_ref.py --dtype "$1" $ONLY >>"$RESULTS" 2>>"$RUN_LOG"
  echo "torch $1 exit $?" | tee -a "$RUN_LOG"
}
finish() {
  python3 benches/gpu/report.py "$RESULTS" | tee "$OUT/report.md"
  python3 benches/gpu/autotune_summary.py "$CUBECL_CACHE" \
    "$CUBECL_CACHE/cuda/0.10.0/ptx/toc.json.log" >"$OUT/autotune-summary.md" 2>>"$RUN_LOG"
  tail -3 "$OUT/autotune-summary.md"
  pack_cache
  log "done"
}
peak_memory() { # phase: its peak GPU memory, into run.log
  echo "peak used MiB, $1: $(grep "^$1 " "$MEM" | cut -d' ' -f2 | sort -n | tail -1)" |
    tee -a "$RUN_LOG"
}
pack_cache() { # the cache into $OUT, replacing an earlier pack only once the new one is complete
  local pack=/tmp/cubecl-cache.tar.xz
  (cd "$CUBECL_CACHE" && tar -cf - . | xz -T0 -6 >"$pack") || return
  rm -f "$OUT"/cubecl-cache.tar.xz*
  if [ "$(stat -c %s "$pack")" -le $((15 << 20)) ]; then
    mv "$pack" "$OUT/cubecl-cache.tar.xz"
  else # files over 16 MiB do not come back
    split -b 15M -d -a 1 "$pack" "$OUT/cubecl-cache.tar.xz.part" && rm "$pack"
  fi
  cache_report "packed into $(du -ch "$OUT"/cubecl-cache.tar.xz* | tail -1 | cut -f1) in $(ls \
    "$OUT" | grep -c cubecl-cache) file(s)"
}
# The bench cases warmed side by side: the UNet's levels (most of the full step's kernels), the
# other stages, the attention kernels (Burn's plain and padded for its flash kernels, cuBLASLt
# unfused, and the models' entry: cuDNN's fused kernel), the group and layer norms (fused, and
# Burn's ops) and the GEMMs (cuBLASLt, and Burn's matmul), the 3×3 convolution (cuDNN, and
# Burn's), and the narrow UNet that measures the step's fixed cost.
# (WARM_PARTS chooses others: the stages' alone when the kernel table is skipped.)
WARM_PARTS=${WARM_PARTS:-"unet_level2 unet_level1 vae_decode faceclip_encoder flux_step
  self,cross,groupnorm,layernorm matmul,linear,conv unet_overhead"}
# The CUDA parity tests in processes of their own, by test-name prefix (the pipeline first).
PARITY_GROUPS="unet_tests::pipeline unet_tests::unet_model unet_tests::vae core_tests align_tests
  encoders_tests fusion_tests dit_tests"
warm() { # time limit in seconds: compile and autotune in parallel processes, one cache
  # The host has 16 cores and kernel compilation is single-threaded, so the WARM_PARTS and the
  # PARITY_GROUPS warm up side by side; the timed runs that
  # follow start from the shared cache. (Autotune timings taken meanwhile share the GPU; it was
  # idle 92 % of the time in the serial run.)
  log "warm in parallel, limit $1 s"
  sample_memory warm
  local sampler=$! pids=() part m names
  for part in $WARM_PARTS; do
    timeout "$1" .gpu/gpu --backend cuda-bf16 --only "$part" --warmup 1 --iters 1 \
      >"/tmp/warm-$part.jsonl" 2>"/tmp/warm-$part.err" &
    pids+=($!)
  done
  for m in $PARITY_GROUPS; do
    names=$(.gpu/tests/parity --list --format terse 2>/dev/null |
      sed -n "s/^\(${m}::[^ ]*cuda[^ ]*\): test\$/\1/p")
    [ -n "$names" ] || continue
    # shellcheck disable=SC2086  # one argument per test name
    timeout "$1" .gpu/tests/parity $names --exact --test-threads 1 --nocapture \
      >"/tmp/parity-${m//:/_}.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  pkill -f "nvidia-smi --query-gpu=memory.used" || kill "$sampler"
  for part in $WARM_PARTS; do
    sed "s/^/warm $part: /" "/tmp/warm-$part.err" "/tmp/warm-$part.jsonl" >>"$RUN_LOG"
  done
  for m in $PARITY_GROUPS; do
    local log=/tmp/parity-${m//:/_}.log
    [ -f "$log" ] && { echo "--- $m (warm phase)"; cat "$log"; }
  done >>"$OUT/parity.log"
  cache_report "after warm"
  peak_memory warm
  grep -E "^--- |relative L2|PSNR|cuBLASLt|cuDNN|test result|FAILED|panicked" "$OUT/parity.log" | tail -40
}
touch "$RESULTS"
: >"$MEM"

# Most important first: whatever finished is in $OUT even if the session's limit cuts the rest.
if [ "$SCOPE" = stages ]; then
  # CUDA parity and the warm-up of every stage, in parallel; then the timed runs.
  warm "${WARM_S:-300}"
  pack_cache # what the warm-up compiled comes back even if the session's limit cuts the rest
  # The stages first, then the kernel table: on 2026-11-27 (H200) Burn's own attention
  # kernels at the VAE's shape, autotuned in the timed run, took the whole of one shared limit.
  # (`launch`: the host's cost of one call of each kind, first: they take a second.)
  ONLY="--iters 5 --only launch,unet_step,unet_overhead,vae_decode,faceclip_encoder,unet_level"
  ONLY="$ONLY,sdxl_image,flux_step"
  burn cuda-bf16 "${BURN_S:-150}"
  # Where a UNet step's host time goes (its narrow variant: the step's fixed cost).
  [ "${PERF_S:-0}" -gt 0 ] && profile_host unet_overhead "$PERF_S"
  [ -n "${TORCH_ONLY:-}" ] && ONLY="--iters 5 --only $TORCH_ONLY"
  torch bf16 "${TORCH_S:-60}"
  # The libraries' calls queued without waiting for the device thread, against waited for.
  if [ "${QUEUED_S:-60}" -gt 0 ]; then
    ONLY="--iters 5 --only launch,unet_step,vae_decode,faceclip_encoder,flux_step"
    BURN_CALLS=queued burn cuda-bf16 "${QUEUED_S:-60}"
  fi
  # cuDNN's graph API against its legacy call, on the cases made of convolutions.
  if [ "${GRAPH_CONV_S:-40}" -gt 0 ]; then
    ONLY="--iters 5 --only launch_conv,vae_decode"
    BURN_CONV=graph burn cuda-bf16 "${GRAPH_CONV_S:-40}"
  fi
  # The peak memory of the fitted pools against CubeCL's preset (item 4's memory target).
  if [ "${FITTED_S:-60}" -gt 0 ]; then
    ONLY="--iters 5 --only unet_step,vae_decode"
    BURN_MEMORY=fitted burn cuda-bf16 "${FITTED_S:-60}"
  fi
  ONLY="--iters 5 --only matmul,linear,conv,self,cross,groupnorm,layernorm"
  # A limit of 0 skips the kernel table (`timeout 0` would not limit at all).
  [ "${BURN_KERNELS_S:-60}" -gt 0 ] && burn cuda-bf16 "${BURN_KERNELS_S:-60}"
  [ "${TORCH_KERNELS_S:-30}" -gt 0 ] && torch bf16 "${TORCH_KERNELS_S:-30}"
  finish
  exit 0
fi
# Whether the binaries have the wgpu backend (`vulkan` implies it).
has_wgpu() { grep -qE 'wgpu|vulkan' .gpu/features 2>/dev/null; }
if [ "$SCOPE" = wgpu ]; then
  if ! has_wgpu; then
    log "wgpu: the binaries were built without it (GPU_FEATURES=vulkan,cuda prepare.sh)"
    finish
    exit 1
  fi
  # The first call of each stage compiles wgpu's kernels (the bench's warm-up call).
  ONLY="--iters 5 --only ${WGPU_ONLY:-launch,unet_step,vae_decode,faceclip_encoder}"
  burn wgpu "${WGPU_S:-240}"
  burn cuda "${BURN_S:-150}"
  torch f32 "${TORCH_S:-90}"
  parity "${PARITY_S:-120}" _wgpu
  finish
  exit 0
fi
parity "${PARITY_S:-60}" _cuda
burn cuda "${BURN_S:-110}"
torch bf16
torch f32
burn cuda-bf16 "${BURN_S:-90}"
if has_wgpu; then
  parity "${PARITY_S:-60}" _wgpu
  burn wgpu "${WGPU_S:-60}"
else
  log "wgpu skipped: the binaries were built without it (GPU_FEATURES=wgpu,cuda prepare.sh)"
fi
finish
