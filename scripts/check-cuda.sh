#!/usr/bin/env bash
# Build check of the raw CUDA kernels: `nvcc -c` of every native/src/core/*.cu for sm_80 and sm_90
# into a temporary directory. The kernels use only the CUDA runtime, so no CUDA libtorch is needed.
# Exits 0 with "skipped: nvcc not found" when there is no nvcc (CPU-only CI runners).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

nvcc="${NVCC:-}"
if [[ -z "$nvcc" ]]; then
  for c in nvcc "${CUDA_HOME:-/nonexistent}/bin/nvcc" /usr/local/cuda/bin/nvcc /usr/local/bin/nvcc; do
    if command -v "$c" >/dev/null 2>&1; then nvcc="$(command -v "$c")"; break; fi
  done
fi
if [[ -z "$nvcc" ]]; then
  echo "check-cuda: skipped: nvcc not found (set NVCC or CUDA_HOME to enable the CUDA build check)"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
shopt -s nullglob
sources=("$root"/native/src/core/*.cu)
if [[ ${#sources[@]} -eq 0 ]]; then
  echo "check-cuda: no .cu files under native/src/core" >&2
  exit 1
fi
echo "check-cuda: $("$nvcc" --version | tail -n 2 | head -n 1)"
for src in "${sources[@]}"; do
  for arch in 80 90; do
    obj="$tmp/$(basename "$src" .cu).sm_$arch.o"
    "$nvcc" -std=c++17 -O3 -Werror all-warnings -gencode "arch=compute_$arch,code=sm_$arch" \
      -I "$root/native/include" -I "$root/native/src/core" -c "$src" -o "$obj"
    echo "check-cuda: ok  $(basename "$src")  sm_$arch  ($(stat -c %s "$obj") bytes)"
  done
done
