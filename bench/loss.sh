#!/usr/bin/env bash
# bench/loss: fused relaxed contrastive loss vs the unfused libtorch autograd composite, forward +
# backward, float32 CPU, B in {64, 256, 1024, 4096}, D = 512. Builds the C++ benchmark if needed
# (plain CMake, Release, build-bench/), prints the table and writes bench/results/loss.json.
# Usage: bench/loss.sh [--threads N] [--sizes 64,256] [...]   (threads default: $CXR_THREADS or 1)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CXR_BENCH_BUILD_DIR:-$root/build-bench}"
if [[ ! -f "$build/build.ninja" && ! -f "$build/Makefile" ]]; then
  gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCXR_BUILD_TESTS=ON >/dev/null
fi
cmake --build "$build" --target loss_bench -j "${CXR_BUILD_JOBS:-1}"
mkdir -p "$root/bench/results"
# Passive OpenMP waiting: active spinning makes 2-thread runs up to 3x slower on shared vCPUs.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
"$build/loss_bench" --json "$root/bench/results/loss.json" "$@"
