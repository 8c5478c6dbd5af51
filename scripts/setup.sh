#!/usr/bin/env bash
# One-command set-up on a fresh Debian/Ubuntu machine (only the npm and apt registries are needed):
#   1. finds libtorch: $LIBTORCH (a libtorch root), $Torch_DIR (its share/cmake/Torch), or the system's;
#      when none is found, installs Debian's libtorch-dev + libopenblas0-openmp (+ libgloo-dev for
#      multi-process training) with apt;
#   2. npm ci;
#   3. builds the native addon (cmake-js, node-gyp fallback) and the TypeScript.
# Nothing is downloaded from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cxr-train setup: apt-get not found; install $* with your package manager, or set LIBTORCH" >&2
    exit 1
  fi
  echo "cxr-train setup: installing $* with apt"
  if [ -z "${CXR_APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; export CXR_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

# Build tools (part of most images; installed when missing).
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

system_torch() {
  for d in /usr/lib/x86_64-linux-gnu/cmake/Torch /usr/lib/aarch64-linux-gnu/cmake/Torch /usr/share/cmake/Torch /usr/local/share/cmake/Torch; do
    [ -f "$d/TorchConfig.cmake" ] && return 0
  done
  return 1
}

if [ -n "${LIBTORCH:-}" ]; then
  echo "cxr-train setup: using libtorch from LIBTORCH=$LIBTORCH"
  [ -d "$LIBTORCH" ] || { echo "cxr-train setup: LIBTORCH=$LIBTORCH is not a folder" >&2; exit 1; }
elif [ -n "${Torch_DIR:-}" ]; then
  echo "cxr-train setup: using libtorch from Torch_DIR=$Torch_DIR"
elif system_torch; then
  echo "cxr-train setup: using the system libtorch"
else
  apt_install libtorch-dev libopenblas0-openmp
fi

# Both OpenBLAS builds installed (libtorch-dev's dependencies can bring the pthread one): Debian's
# alternatives then pick the pthread build (priority 100 vs 95), whose idle threads spin; a 2-thread step ran
# ~20 % slower with it (docs/benchmarks.md). Moves every alternative that points into the pthread build
# (libblas.so.3, liblapack.so.3, libopenblas.so.0, ...) to the same file of the OpenMP build; alternatives
# set by hand are left alone.
select_openmp_blas() {
  command -v update-alternatives >/dev/null 2>&1 || return 0
  local name mode value want changed=""
  while read -r name mode value; do
    case "$value" in */openblas-pthread/*) ;; *) continue ;; esac
    want=${value/\/openblas-pthread\//\/openblas-openmp\/}
    [ -e "$want" ] || continue
    if [ "$mode" = "manual" ]; then
      echo "cxr-train setup: $name was set by hand to $value; left as it is (OpenBLAS's OpenMP build: $want)"
      continue
    fi
    $SUDO update-alternatives --set "$name" "$want" >/dev/null
    changed="$changed $name"
  done < <(update-alternatives --get-selections 2>/dev/null)
  if [ -n "$changed" ]; then echo "cxr-train setup: OpenBLAS's OpenMP build selected for$changed"; fi
}

# Debian's libtorch links libblas.so.3; without OpenBLAS that is the reference BLAS, 15-25x slower.
if [ -z "${LIBTORCH:-}${Torch_DIR:-}" ] && command -v dpkg >/dev/null 2>&1; then
  if ! dpkg -s libopenblas0-openmp >/dev/null 2>&1; then apt_install libopenblas0-openmp; fi
  select_openmp_blas
  # Gloo's headers: Debian's libtorch links libgloo but ships only the torch side of c10d's Gloo backend.
  # Without them everything works except multi-process training on CPU (capabilities().distributed).
  if ! dpkg -s libgloo-dev >/dev/null 2>&1; then apt_install libgloo-dev || echo "cxr-train setup: libgloo-dev not installed: no distributed training on CPU" >&2; fi
fi

# npm ci also builds the addon through the package's install hook; build:native then only checks it is
# up to date (and shows the compiler's errors if the hook could not build it).
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
node -e "const c=require('./dist/native').capabilities(); console.log('cxr-train setup: ready. libtorch', c.torchVersion, '| CUDA', c.cuda.available ? c.cuda.devices + ' device(s)' : 'no', '|', c.blas.split(' ').slice(0,2).join(' '), '|', c.threads, 'thread(s)')"
