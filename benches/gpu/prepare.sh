#!/usr/bin/env bash
# Builds everything the GPU session needs, on this (x86-64) machine, into .gpu/ (git-ignored):
# the `gpu` bench binary and the release test binaries of every crate, built with wgpu + cuda.
# Also expects .whl/ (diffusers + importlib_metadata wheels) and .gl/ (Vulkan/GL loader .debs);
# see benches/RESULTS.md for the commands that fetch them. Then, with the device tool:
#   run(command="OUT=$OUT benches/gpu/run.sh", carry=[".gpu", ".whl", ".gl"])
set -euo pipefail
cargo bench --bench gpu --features wgpu,cuda --no-run 2>&1 | tail -2
# PACKAGES="-p faceclip-unet" rebuilds only that crate's tests (the others are kept from .gpu).
if [ -n "${PACKAGES:-}" ]; then
  cargo test --release $PACKAGES --features wgpu,cuda --tests --no-run 2>&1 | tee /tmp/gpu-tests.log | tail -8
  [ -f .gpu/bins.tar.xz ] && (cd .gpu && tar -xJf bins.tar.xz && rm bins.tar.xz)
else
  cargo test --release --workspace --features wgpu,cuda --tests --no-run 2>&1 | tee /tmp/gpu-tests.log | tail -8
  rm -rf .gpu
fi
mkdir -p .gpu/tests
pwd >.gpu/built_in
bench=$(ls -t target/release/deps/gpu-* | grep -v '\.d$' | head -1)
cp "$bench" .gpu/gpu
grep -o 'Executable tests/[a-z]*/main.rs ([^)]*)' /tmp/gpu-tests.log | sed 's/.*(\(.*\))/\1/' |
  while read -r t; do cp "$t" ".gpu/tests/$(basename "$t" | sed 's/-.*//')"; done
strip .gpu/gpu .gpu/tests/*
du -sh .gpu/gpu .gpu/tests/*
# The working tree that travels to the GPU host is limited to 64 MiB: ship one archive.
(cd .gpu && tar -cf - gpu tests | xz -T2 -6 >bins.tar.xz && rm -r gpu tests)
du -sh .gpu/bins.tar.xz
