#!/usr/bin/env bash
# Builds everything the GPU session needs on this x86-64 machine (nothing is compiled on the GPU
# host), all git-ignored:
#   .gpu/bins.tar.xz  the `gpu` bench and the release `parity` test binary (wgpu + cuda)
#   .gpu/built_in     this checkout's path (the test binaries find their fixtures through it)
#   .gpu/cubecl-cache.tar.xz  (optional, kept) CubeCL PTX + autotune cache from an earlier run
#   .whl/             diffusers 0.42.1 + importlib_metadata wheels (the host has torch, not diffusers)
#   .gl/              the Vulkan/GL loader packages wgpu needs on the host
# Check the script's flow here with `bash benches/gpu/dry_run.sh` (no GPU needed). Then, with the
# device tool: run(command="export OUT; WARM_S=270 BURN_S=170 TORCH_S=75 bash
# benches/gpu/run.sh stages", carry=[".gpu", ".whl", ".gl"], timeout_s=590) — `stages` fits a
# 15-minute lease; copy the returned cubecl-cache.tar.xz to .gpu/ at once (or `cat` its
# .part0 .part1 pieces into it), so the next run starts from what this one compiled. The working tree that travels is limited to 64 MiB; the
# workspace's integration tests are one binary (`tests/parity`), run there filtered by backend.
set -euo pipefail

for ignored in /.gpu/ /.whl/ /.gl/; do
  grep -qx "$ignored" .git/info/exclude || echo "$ignored" >>.git/info/exclude
done
if [ ! -d .whl ]; then
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d .whl diffusers==0.42.1 importlib_metadata
fi
if [ ! -d .gl ]; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p .gl /tmp/amd64/partial
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

cargo bench --bench gpu --features wgpu,cuda --no-run 2>&1 | tail -2
cargo test --release --features wgpu,cuda --test parity --no-run 2>&1 | tee /tmp/gpu-tests.log | tail -4

stage=$(mktemp -d)
mkdir -p "$stage/tests"
cp "$(ls -t target/release/deps/gpu-* | grep -v '\.d$' | head -1)" "$stage/gpu"
grep -o 'Executable tests/[a-z]*/main.rs ([^)]*)' /tmp/gpu-tests.log | sed 's/.*(\(.*\))/\1/' |
  while read -r t; do cp "$t" "$stage/tests/$(basename "$t" | sed 's/-.*//')"; done
strip "$stage/gpu" "$stage"/tests/*
mkdir -p .gpu && rm -f .gpu/bins.tar.xz .gpu/built_in  # keeps a carried .gpu/cubecl-cache.tar.xz
pwd >.gpu/built_in
(cd "$stage" && tar -cf - gpu tests | xz -T2 -9 >"$OLDPWD/.gpu/bins.tar.xz")
rm -rf "$stage"
du -sh .gpu/bins.tar.xz .whl .gl
