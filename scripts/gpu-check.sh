#!/usr/bin/env bash
# gpu-check: one command that builds the native core with plain CMake (no Node, no cmake-js), runs its C++
# tests, the loss bench, and the native train step (native/bench/step_bench) against the PyTorch reference
# (bench/reference/clip_torch.py) on the same device, and writes a report.
#
#   bash scripts/gpu-check.sh OUTDIR
#
# Needs: python3 with torch (CUDA PyTorch on a GPU machine), cmake, ninja, a C++17 compiler, nvcc when CUDA is
# there. libtorch: PyTorch's own CMake files (torch.utils.cmake_prefix_path) when it ships them, else the
# system libtorch-dev's (Debian: /usr/lib/x86_64-linux-gnu/cmake/Torch), else $Torch_DIR / $LIBTORCH.
# CUDA: when torch.cuda.is_available(), the build gets -DCXR_WITH_CUDA=ON (if that configure fails, the
# core is built without its own CUDA kernels and the report says so; libtorch's CUDA still runs the bench).
#
# Writes OUTDIR/gpu-report.json and OUTDIR/gpu-report.md, and every stage's log beside them (configure.log,
# build.log, ctest.log, loss_bench.*, step.*.json, torch.*.json). Prints each stage's elapsed time.
# Budget: CXR_GPU_CHECK_BUDGET_S (default 390 s, under 7 minutes with margin): optional rows are skipped once
# the elapsed time plus the slowest row so far would pass it. Environment: PYTHON (python with torch),
# CXR_BUILD_DIR (default OUTDIR/build; an existing one is reused incrementally), CXR_THREADS (default nproc),
# CXR_CTEST_TIMEOUT_S (all of ctest, default 200), CXR_ROW_TIMEOUT_S (each side of a bench row, default 150).
# Exit status: 0 ok; 1 ctest failed; 2 configure or build failed; 3 a required bench row failed.
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: bash scripts/gpu-check.sh OUTDIR" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
build="${CXR_BUILD_DIR:-$out/build}"
budget="${CXR_GPU_CHECK_BUDGET_S:-390}"
threads="${CXR_THREADS:-$(nproc)}"
t_start=$(date +%s)
stages="$out/stages.tsv"
rows="$out/rows.tsv"
: >"$stages"
: >"$rows"
export OMP_WAIT_POLICY=passive

log() { echo "[gpu-check +$(($(date +%s) - t_start))s] $*"; }
# stage NAME LOGFILE CMD...: runs CMD with its output in LOGFILE, records the elapsed seconds and status.
stage() {
  local name="$1" logf="$2"
  shift 2
  local t0 rc
  t0=$(date +%s.%N)
  "$@" >"$logf" 2>&1
  rc=$?
  local dt
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\t%s\t%s\n' "$name" "$dt" "$rc" "$(basename "$logf")" >>"$stages"
  log "$name: ${dt}s (exit $rc; log $(basename "$logf"))"
  return $rc
}

# ---- python, torch, CUDA ----
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  for c in python3 /usr/bin/python3 python; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import torch' >/dev/null 2>&1; then python="$(command -v "$c")"; break; fi
  done
fi
if [[ -z "$python" ]]; then
  echo "gpu-check: no python with torch found (set PYTHON)" >&2
  exit 2
fi
"$python" - >"$out/torch-info.json" <<'EOF'
import json, os, torch
info = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda, "cmake_prefix_path": getattr(torch.utils, "cmake_prefix_path", None)}
if info["cuda_available"]:
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                gpu_memory_bytes=p.total_memory, gpu_capability="%d.%d" % (p.major, p.minor))
print(json.dumps(info))
EOF
cuda=$("$python" -c 'import json,sys; print("1" if json.load(open(sys.argv[1]))["cuda_available"] else "0")' "$out/torch-info.json")
info() { "$python" -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$out/torch-info.json" "$1"; }
log "python $python; torch $(info torch); CUDA available: $([[ $cuda == 1 ]] && echo "yes ($(info gpu))" || echo no); threads $threads"

torch_dir=""
prefix=$(info cmake_prefix_path)
for d in "$prefix/Torch" "${Torch_DIR:-}" "${LIBTORCH:+$LIBTORCH/share/cmake/Torch}" /usr/lib/x86_64-linux-gnu/cmake/Torch \
  /usr/lib/aarch64-linux-gnu/cmake/Torch /usr/lib/cmake/Torch /usr/share/cmake/Torch /usr/local/share/cmake/Torch; do
  if [[ -n "$d" && -f "$d/TorchConfig.cmake" ]]; then torch_dir="$d"; break; fi
done
if [[ -z "$torch_dir" ]]; then
  echo "gpu-check: no TorchConfig.cmake (python's torch has none; install libtorch-dev or set Torch_DIR)" >&2
  exit 2
fi
log "Torch_DIR $torch_dir"

# ---- configure and build (only what runs) ----
with_cuda=OFF
cuda_build_note=""
gen=(-G Ninja)
if [[ -f "$build/CMakeCache.txt" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$build/CMakeCache.txt"; then
  echo "gpu-check: $build was configured with another generator; remove it or set CXR_BUILD_DIR" >&2
  exit 2
fi
configure() {
  cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCXR_BUILD_TESTS=ON -DCXR_WITH_CUDA="$1" \
    -DTorch_DIR="$torch_dir"
}
build_ok=1
# CMake finds nvcc on PATH or through CUDACXX; CUDA images often have it only in /usr/local/cuda/bin.
if [[ $cuda == 1 && -z "${CUDACXX:-}" ]] && ! command -v nvcc >/dev/null 2>&1; then
  for c in "${CUDA_HOME:-/nonexistent}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
    if [[ -x $c ]]; then export CUDACXX="$c" PATH="$(dirname "$c"):$PATH"; break; fi
  done
fi
if [[ $cuda == 1 ]]; then
  if stage configure "$out/configure.log" configure ON; then
    with_cuda=ON
  else
    cuda_build_note="configure with CXR_WITH_CUDA=ON failed (configure.log); built without the project's CUDA kernels"
    log "$cuda_build_note"
    stage configure-without-kernels "$out/configure-nocuda.log" configure OFF || build_ok=0
  fi
else
  stage configure "$out/configure.log" configure OFF || build_ok=0
fi
tests=()
for f in "$root"/native/test/*_test.cc; do tests+=("$(basename "$f" .cc)"); done
if [[ $build_ok == 1 ]]; then
  stage build "$out/build.log" ninja -C "$build" -j"$(nproc)" cxr_core "${tests[@]}" loss_bench step_bench || build_ok=0
fi
if [[ $build_ok == 0 ]]; then
  # Still a report: the stages table says which step failed; the logs are beside it.
  for f in "$out/configure.log" "$out/configure-nocuda.log" "$out/build.log"; do [[ -f $f ]] && tail -n 30 "$f" >&2; done
  printf '%s\t%s\t%s\t%s\n' total "$(($(date +%s) - t_start))" 2 - >>"$stages"
  "$python" "$root/scripts/gpu-report.py" "$out" "$root" "$with_cuda" 2 "$threads" "$budget" "configure or build failed; ${cuda_build_note}"
  log "configure or build failed: $out/gpu-report.md"
  exit 2
fi

# ---- C++ tests ----
ctest_rc=0
# Bounded, so that a hanging test cannot eat the machine's time (a timeout counts as a failure).
stage ctest "$out/ctest.log" timeout "${CXR_CTEST_TIMEOUT_S:-200}" ctest --test-dir "$build" --output-on-failure --timeout 150 ||
  ctest_rc=1
grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -n 1

# ---- loss bench (CPU only: it times the CPU kernels with a counting CPU allocator) ----
if [[ $cuda == 1 ]]; then sizes=256,1024,4096; else sizes=64,256,1024; fi
stage loss_bench "$out/loss_bench.txt" timeout 120 "$build/loss_bench" --threads "$threads" --sizes "$sizes" --json "$out/loss_bench.json" ||
  log "loss_bench failed (see loss_bench.txt)"

# ---- train step: native vs PyTorch, same device, same batch, same length ----
slowest=0
required_failed=0
row_timeout=${CXR_ROW_TIMEOUT_S:-150}  # each side of a row; a hang must not take the whole budget
# row ID MODEL DEVICE PRECISION BATCH STEPS REQUIRED(1|0)
row() {
  local id="$1" model="$2" dev="$3" prec="$4" batch="$5" steps="$6" required="$7"
  local now=$(($(date +%s) - t_start))
  if [[ $required == 0 && $((now + slowest)) -gt $budget ]]; then
    log "skip $id: ${now}s elapsed + ${slowest}s for a row > budget ${budget}s"
    printf '%s\tskipped\t%s\t%s\t%s\t%s\t%s\n' "$id" "$model" "$dev" "$prec" "$batch" "$required" >>"$rows"
    return 0
  fi
  local t0=$(date +%s) warm=3 len
  [[ $dev == cpu ]] && warm=1
  len=$(awk -F= '$1=="text.contextLength"{print $2}' "$root/native/bench/models/$model.cfg")
  local status=ok
  stage "step $id native" "$out/step.$id.txt" timeout "$row_timeout" "$build/step_bench" --model "$root/native/bench/models/$model.cfg" \
    --batch "$batch" --precision "$prec" --device "$dev" --steps "$steps" --warmup "$warm" --threads "$threads" \
    --length "$len" --json "$out/step.$id.json" || status=failed
  local flops="null"
  [[ -f "$out/step.$id.json" ]] && flops=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["flops_per_step"])' "$out/step.$id.json")
  local args
  args=$("$python" -c 'import json,sys; print(json.dumps({"config": json.load(open(sys.argv[1])), "batch": int(sys.argv[2]),
    "steps": int(sys.argv[3]), "warmup": int(sys.argv[4]), "threads": int(sys.argv[5]), "device": sys.argv[6],
    "precision": sys.argv[7], "length": int(sys.argv[8]), "hostInputs": True,
    "flopsPerStep": None if sys.argv[9] == "null" else float(sys.argv[9])}))' \
    "$root/lib/models/configs/$model.json" "$batch" "$steps" "$warm" "$threads" "$dev" "$prec" "$len" "$flops")
  if stage "step $id pytorch" "$out/torch.$id.txt" timeout "$row_timeout" "$python" "$root/bench/reference/clip_torch.py" "$args"; then
    tail -n 1 "$out/torch.$id.txt" >"$out/torch.$id.json"
  else
    status=failed
  fi
  local dt=$(($(date +%s) - t0))
  ((dt > slowest)) && slowest=$dt
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$status" "$model" "$dev" "$prec" "$batch" "$required" >>"$rows"
  if [[ $status != ok && $required == 1 ]]; then required_failed=1; fi
  [[ -f "$out/step.$id.txt" ]] && sed -n 3p "$out/step.$id.txt"
}
if [[ $cuda == 1 ]]; then
  row vitb32-b256-bf16 ViT-B-32 cuda:0 bf16 256 10 1
  row vitb32-b256-fp32 ViT-B-32 cuda:0 fp32 256 10 0
  row rn50-b256-bf16 RN50 cuda:0 bf16 256 10 0
  row vitb16-b256-bf16 ViT-B-16 cuda:0 bf16 256 10 0
else
  row testvit-b16-fp32 test-vit cpu fp32 16 10 1
  row vitb32-b4-fp32 ViT-B-32 cpu fp32 4 3 0
fi

# ---- report ----
total=$(($(date +%s) - t_start))
printf '%s\t%s\t%s\t%s\n' total "$total" 0 - >>"$stages"
"$python" "$root/scripts/gpu-report.py" "$out" "$root" "$with_cuda" "$ctest_rc" "$threads" "$budget" "$cuda_build_note" ||
  log "report failed"
log "done in ${total}s: $out/gpu-report.md"
if [[ $ctest_rc != 0 ]]; then exit 1; fi
if [[ $required_failed != 0 ]]; then exit 3; fi
exit 0
