#!/usr/bin/env bash
# Screenshot of a report card page in headless Chromium, to check that it renders (curves included)
# without any network access. Usage:
#   scripts/screenshot-report-card.sh DIR_OR_report.html [OUT.png] [WIDTHxHEIGHT]
# Needs Debian's chromium package (apt-get install -y chromium); CHROMIUM=/path overrides the binary.
set -euo pipefail
in="${1:?usage: $0 DIR_OR_report.html [OUT.png] [WIDTHxHEIGHT]}"
[ -d "$in" ] && in="$in/report.html"
[ -f "$in" ] || { echo "no such report page: $in" >&2; exit 1; }
out="${2:-$(dirname "$in")/report.png}"
size="${3:-1400x3000}"
bin="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
[ -n "$bin" ] || { echo "chromium not found: apt-get install -y chromium, or set CHROMIUM" >&2; exit 1; }
abs="$(cd "$(dirname "$in")" && pwd)/$(basename "$in")"
outabs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# A throw-away profile and no network: the page must be self-contained.
timeout 120 "$bin" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --user-data-dir="$profile" --proxy-server='127.0.0.1:9' --proxy-bypass-list='<-loopback>' \
  --window-size="${size/x/,}" --screenshot="$outabs" "file://$abs" >/dev/null 2>&1 || true
[ -s "$outabs" ] || { echo "chromium produced no screenshot" >&2; exit 1; }
echo "$outabs"
