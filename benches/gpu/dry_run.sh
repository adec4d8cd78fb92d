#!/usr/bin/env bash
# Runs benches/gpu/run.sh here, without a GPU, to check its control flow before a GPU session:
# the binaries prepared in .gpu/ start and fail at CUDA initialisation (no driver), `nvidia-smi`,
# `dpkg` and `ldconfig` are stand-ins, and every step must still run, respect its time limit and
# leave its files in $OUT. Needs `bash benches/gpu/prepare.sh` first.
#
#   bash benches/gpu/dry_run.sh [stages|kernels|all]     # files in /tmp/gpu-dry-run/out
set -euo pipefail
ROOT=$(pwd)
if [ ! -f .gpu/bins.tar.xz ]; then
  echo "no .gpu/bins.tar.xz: run benches/gpu/prepare.sh first" >&2
  exit 1
fi
DRY=/tmp/gpu-dry-run
rm -rf "$DRY" /tmp/warm-* /tmp/parity-* /tmp/gpu-mem.txt
mkdir -p "$DRY/stubs" "$DRY/repo/.gpu" "$DRY/repo/.gl"

cat >"$DRY/stubs/nvidia-smi" <<'EOF'
#!/usr/bin/env bash
# Stand-in: memory sampling prints zeros until killed; anything else prints one fake device.
if [[ "$*" == *-lms* ]]; then while true; do echo 0; sleep 0.2; done; fi
echo "name, driver_version, memory.total [MiB], clocks.max.sm [MHz]"
echo "dry run, 0, 0, 0"
EOF
printf '#!/bin/sh\nexit 0\n' >"$DRY/stubs/dpkg"
cp "$DRY/stubs/dpkg" "$DRY/stubs/ldconfig"
chmod +x "$DRY"/stubs/*

# A working tree like the one the device tool copies: the scripts, the prepared binaries (the
# test binary's fixtures stay where it was built, so built_in names the copy itself) and wheels.
cd "$DRY/repo"
ln -s "$ROOT/benches" benches
[ -d "$ROOT/.whl" ] && ln -s "$ROOT/.whl" .whl
cp "$ROOT/.gpu/bins.tar.xz" .gpu/
for f in features commit; do if [ -f "$ROOT/.gpu/$f" ]; then cp "$ROOT/.gpu/$f" .gpu/; fi; done
pwd >.gpu/built_in

export PATH="$DRY/stubs:$PATH" OUT="$DRY/out" CUBECL_CACHE="$DRY/cubecl-cache"
status=0
WARM_S=60 PARITY_S=30 BURN_S=30 WGPU_S=30 TORCH_S=30 bash benches/gpu/run.sh "${1:-stages}" \
  >"$DRY/stdout" 2>&1 || status=$?
if pgrep -f "$DRY/stubs/nvidia-smi" >/dev/null; then
  echo "dry run: a memory sampler was left running" >&2
  pkill -f "$DRY/stubs/nvidia-smi"
  exit 1
fi
echo "run.sh exit $status; files in $OUT:"
ls "$OUT"
grep -E "^== " "$OUT/run.log"
