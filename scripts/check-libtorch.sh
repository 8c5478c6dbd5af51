#!/usr/bin/env bash
# Builds and tests cxr-train against another libtorch than the host's: Debian 13 ("trixie"), whose
# libtorch-dev is 2.6, in a debootstrap root made from Debian's packages. CI runs it (root needed).
#
#   scripts/check-libtorch.sh [--tests all|addon] [--demo] [--bench] [--out DIR]
#
#   --tests all    the C++ core tests and the whole jest suite (default)
#   --tests addon  the C++ core tests and the jest tiers that load the addon (native, e2e)
#   --demo         also runs `npx cxr-train demo` there
#   --bench        also runs bench/trainStep.js there against python3-torch 2.6 (the same libtorch), 1 and 2 threads
#   --out DIR      copies the bench/demo outputs to DIR on the host
#
# The root is kept in $CXR_TRIXIE_ROOT (default /var/tmp/cxr-trixie) and reused when present: it holds
# Debian packages only; the project is cloned afresh from this checkout's HEAD (committed work) every time.
# If the host is itself Debian 13, the ordinary build already uses 2.6 and this script says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

tests=all demo=0 bench=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) tests="$2"; shift 2 ;;
    --demo) demo=1; shift ;;
    --bench) bench=1; shift ;;
    --out) out="$2"; shift 2 ;;
    *) echo "check-libtorch: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$tests" in all|addon) ;; *) echo "check-libtorch: --tests takes all or addon" >&2; exit 2 ;; esac

if [ "$(cut -d. -f1 /etc/debian_version 2>/dev/null)" = "13" ]; then
  echo "check-libtorch: the host is Debian 13: the main build already uses its libtorch 2.6; nothing to add"
  exit 0
fi
[ "$(id -u)" = "0" ] || { echo "check-libtorch: needs root (debootstrap, chroot)" >&2; exit 1; }

root=${CXR_TRIXIE_ROOT:-/var/tmp/cxr-trixie}
pkgs="libtorch-dev libopenblas0-openmp libgloo-dev cmake ninja-build g++ make nodejs npm git python3 python3-torch ca-certificates chromium"
t0=$SECONDS
stage() { printf '== [trixie %4ds] %s\n' $((SECONDS - t0)) "$*"; }

cleanup() {
  umount "$root/proc" 2>/dev/null || true
  umount "$root/root/shared" 2>/dev/null || true
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if [ ! -x "$root/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  stage "debootstrap trixie into $root (from ${mirror:-the default mirror})"
  rm -rf "$root"
  debootstrap --variant=minbase trixie "$root" $mirror >/tmp/cxr-debootstrap.log 2>&1 ||
    { tail -20 /tmp/cxr-debootstrap.log >&2; exit 1; }
fi
# What the root needs from the host to reach the registries: the resolver, the CA bundle, npm's settings
# (without nodedir: the root has its own Node headers).
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/etc/ssl/certs" "$root/root"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
if [ -f "$HOME/.npmrc" ]; then grep -v '^nodedir' "$HOME/.npmrc" >"$root/root/.npmrc"; else : >"$root/root/.npmrc"; fi
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin CI="${CI:-}" OMP_WAIT_POLICY=passive \
  DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 bash -c "$1"; }

stage "apt-get install (in the root): $pkgs"
in_root "apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs >/dev/null"
in_root "dpkg-query -W -f='libtorch-dev \${Version}, node ' libtorch-dev && node --version"

stage "clone $(git rev-parse --short HEAD) into the root"
rm -rf "$root/root/cxr"
git clone -q "$repo" "$root/root/cxr"
# Tests read ../shared (fixtures, vocabulary) where it exists, as on the host.
if [ -d "$repo/../shared" ]; then
  mkdir -p "$root/root/shared"
  mount --bind "$repo/../shared" "$root/root/shared"
  mount -o remount,bind,ro "$root/root/shared" 2>/dev/null || true
fi

stage "npm run setup (libtorch 2.6), with the C++ core tests in the same build"
in_root "cd /root/cxr && CXR_BUILD_TESTS=1 npm run setup"

stage "C++ core tests (ctest)"
in_root "set -o pipefail; cd /root/cxr && ctest --test-dir build --output-on-failure -V | grep -vE '^(UpdateCTestConfiguration|Parse|Add Test|Constructing|Checking|Test project|test [0-9]+$)'"

if [ "$tests" = all ]; then
  stage "jest: the whole suite"
  in_root "cd /root/cxr && npm test -- --ci"
else
  stage "jest: the tiers that load the addon"
  in_root "cd /root/cxr && npm run test:native -- --ci && npm run test:e2e -- --ci"
fi

if [ "$demo" = 1 ]; then
  stage "npx cxr-train demo"
  in_root "cd /root/cxr && npx cxr-train demo --out /root/cxr/runs/demo-trixie"
fi
if [ "$bench" = 1 ]; then
  stage "bench/trainStep.js against python3-torch 2.6"
  in_root "cd /root/cxr && node bench/trainStep.js --threads 1,2 --rounds 2"
fi
if [ -n "$out" ]; then
  mkdir -p "$out"
  [ -d "$root/root/cxr/bench/results" ] && cp -r "$root/root/cxr/bench/results/." "$out/" || true
fi
stage "done: libtorch 2.6 builds and passes"
