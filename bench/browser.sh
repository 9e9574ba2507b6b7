#!/usr/bin/env bash
# A real browser's page loads through pushwise: headless Chromium (cold cache) through a delay proxy
# at 50 ms RTT, an upstream that thinks 200 ms per page; no hints vs learned hints vs oracle hints,
# load event and largest contentful paint, median and p90 over 10 loads per page.
#
#   bash bench/browser.sh [loads-per-page] [rtt-ms] [think-ms]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "needs chromium: apt-get install -y chromium" >&2; exit 1; }
cargo build --release -q -p pushwise -p pushwise-bench
target/release/browserload --pushwise target/release/pushwise --site examples/site \
  --loads "${1:-10}" --rtt-ms "${2:-50}" --think-ms "${3:-200}"
