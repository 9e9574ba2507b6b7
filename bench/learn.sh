#!/usr/bin/env bash
# Learning on real-shaped traffic (bench/src/shaped.rs: crawlers, warm caches, a long tail of
# rarely seen pages, slide decks, Referer-less and hot-linked fetches, shuffled seconds). For each
# seed: learn on the older 70% of the page views, score the newer 30% digest-aware, for plain
# per-page co-occurrence (best threshold in hindsight), the per-page oracle (each page's threshold
# in hindsight) and pushwise following its own `tune --apply`.
#
#   bash bench/learn.sh [views] [seeds]      # defaults: 5000 (a 4-day log, ~10,000 lines) and 1,2,3,4
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWS=${1:-5000}
SEEDS=${2:-1,2,3,4}
cargo build --release -q -p pushwise -p pushwise-bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
target/release/learnbench --pushwise target/release/pushwise --views "$VIEWS" --seeds "$SEEDS" --work "$WORK"
