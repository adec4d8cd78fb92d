#!/usr/bin/env bash
# Builds everything the GPU session needs on this x86-64 machine (nothing is compiled on the GPU
# host), all git-ignored:
#   .gpu/bins.tar.xz  the `gpu` bench and the release `parity` test binary (cuda; GPU_FEATURES)
#   .gpu/features     the cargo features they were built with
#   .gpu/commit       the commit they were built from (run.sh logs it)
#   .gpu/built_in     this checkout's path (the test binaries find their fixtures through it)
#   .gpu/cubecl-cache.tar.xz  (optional, kept) CubeCL PTX + autotune cache from an earlier run
#   .whl/             diffusers 0.42.1 (without its pipelines) + importlib_metadata wheels (the
#                     host has torch, not diffusers)
#   .gl/              the Vulkan/GL loader packages wgpu needs on the host
# Check the script's flow here with `bash benches/gpu/dry_run.sh` (no GPU needed). Then, with the
# device tool: run(command="export OUT; WARM_PARTS='unet_level2 unet_level1 vae_decode
# faceclip_encoder flux_step unet_overhead launch' WARM_S=180 BURN_S=100 TORCH_S=90
# TORCH_ONLY=launch,unet_step,unet_overhead,vae_decode,faceclip_encoder,sdxl_image,flux_step
# QUEUED_S=60 GRAPH_CONV_S=30 FITTED_S=40 BURN_KERNELS_S=0 TORCH_KERNELS_S=0 bash
# benches/gpu/run.sh stages", carry=[".gpu", ".whl", ".gl"], timeout_s=540) — `stages` fits a 15-minute lease (the
# kernel table, BURN_KERNELS_S=50 TORCH_KERNELS_S=30 and the default WARM_PARTS, needs another
# ~150 s); copy the returned cubecl-cache.tar.xz to .gpu/ at once (or `cat` its .part0 .part1
# pieces into it), so the next run starts from what this one compiled. Item 6 (wgpu) takes a
# lease of its own: `GPU_FEATURES=vulkan,cuda bash benches/gpu/prepare.sh`, then `run.sh wgpu`
# (the stages on Burn wgpu, Burn cuda f32 and PyTorch f32; WGPU_S, BURN_S, TORCH_S). The working
# tree that travels is limited to 64 MiB; the workspace's integration tests are one binary
# (`tests/parity`), run there filtered by backend.
set -euo pipefail

for ignored in /.gpu/ /.whl/ /.gl/; do
  grep -qx "$ignored" .git/info/exclude || echo "$ignored" >>.git/info/exclude
done
if [ ! -d .whl ]; then
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d .whl diffusers==0.42.1 importlib_metadata
fi
# torch_ref.py needs diffusers' models and schedulers, not its pipelines: without them the wheel
# is 2.1 MB instead of 6.4 (checked: the models import and run with the host's huggingface_hub
# 1.33 and transformers 5.17).
python3 - <<'PY'
import re, shutil, zipfile
wheel = ".whl/diffusers-0.42.1-py3-none-any.whl"
unused = re.compile(r"diffusers/(pipelines|modular_pipelines)/(?!__init__\.py$)")
with zipfile.ZipFile(wheel) as zin:
    items = [i for i in zin.infolist() if not unused.match(i.filename)]
    if len(items) < len(zin.infolist()):
        with zipfile.ZipFile("/tmp/pruned.whl", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
            for item in items:
                zout.writestr(item, zin.read(item.filename))
        shutil.move("/tmp/pruned.whl", wheel)
PY
if [ ! -d .gl ]; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p .gl /tmp/amd64/partial
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

# CUDA alone by default (16 MB of binaries instead of 23 with wgpu); GPU_FEATURES=vulkan,cuda
# for `run.sh all`, which also runs the wgpu backend on the GPU host (`vulkan`: wgpu's kernels
# compiled to SPIR-V for the NVIDIA Vulkan driver; `wgpu,cuda` for WGSL, as on 2026-11-26).
FEATURES=${GPU_FEATURES:-cuda}
cargo bench --bench gpu --no-default-features --features "$FEATURES" --no-run 2>&1 |
  tee /tmp/gpu-bench.log | tail -2
cargo test --release --no-default-features --features "$FEATURES" --test parity --no-run 2>&1 |
  tee /tmp/gpu-tests.log | tail -4
executable() { grep -o "Executable $1 ([^)]*)" "$2" | sed 's/.*(\(.*\))/\1/'; }

stage=$(mktemp -d)
mkdir -p "$stage/tests"
cp "$(executable benches/gpu/main.rs /tmp/gpu-bench.log)" "$stage/gpu"
cp "$(executable tests/parity/main.rs /tmp/gpu-tests.log)" "$stage/tests/parity"
strip "$stage/gpu" "$stage"/tests/*
# Keeps a carried .gpu/cubecl-cache.tar.xz.
mkdir -p .gpu && rm -f .gpu/bins.tar.xz .gpu/built_in .gpu/features .gpu/commit
pwd >.gpu/built_in
echo "$FEATURES" >.gpu/features
# The commit the binaries were built from ("+changes" when the tree differed from it).
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!benches/gpu/results' ||
  echo +changes)" >.gpu/commit
(cd "$stage" && tar -cf - gpu tests | xz -T2 -9 >"$OLDPWD/.gpu/bins.tar.xz")
rm -rf "$stage"

# The device tool carries at most 64 MiB (tracked files included). A cache too big to travel
# keeps its autotune results only (each tuned shape then compiles just its winner there).
travelling() { echo $(($(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) +
  $(du -cb .gpu .whl .gl | tail -1 | cut -f1))); }
if [ -f .gpu/cubecl-cache.tar.xz ] && [ "$(travelling)" -gt $((63 << 20)) ]; then
  cache=$(mktemp -d)
  tar -xJf .gpu/cubecl-cache.tar.xz -C "$cache"
  (cd "$cache" && tar -cf - autotune | xz -9 >"$OLDPWD/.gpu/cubecl-cache.tar.xz")
  rm -rf "$cache"
  echo "kernel cache left behind: the carried tree would exceed 63 MiB; autotune results kept"
fi
du -sh .gpu/* .whl .gl
echo "carried with the tracked files: $(($(travelling) >> 20)) MiB of 64"
