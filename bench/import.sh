#!/usr/bin/env bash
# Import speed against goaccess on the same generated 1M-line combined log, then the analyzer on
# the imported events (one pass over 1M events) and the tune replay's precision/recall.
#
#   bash bench/import.sh [lines] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
ROUNDS=${2:-3}
command -v goaccess >/dev/null || { echo "needs goaccess: apt-get install -y goaccess" >&2; exit 1; }
cargo build --release -q -p pushwise -p pushwise-bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/access.log"
target/release/genlog --preset kind --site examples/site --lines "$LINES" > "$LOG"
echo "log: $(wc -l < "$LOG") lines, $(du -h "$LOG" | cut -f1)"

secs() { python3 -c "import sys,time; print(f'{float(sys.argv[1]):.3f}')" "$1"; }
best_pw=999999; best_ga=999999
for r in $(seq "$ROUNDS"); do
  rm -f "$WORK"/p.db*
  t0=$(date +%s.%N)
  target/release/pushwise --db "$WORK/p.db" import --host example.com --host www.example.com "$LOG" > "$WORK/import.txt"
  t1=$(date +%s.%N)
  goaccess "$LOG" --log-format=COMBINED --no-global-config -o "$WORK/report.json" >/dev/null 2>&1
  t2=$(date +%s.%N)
  pw=$(python3 -c "print($t1-$t0)"); ga=$(python3 -c "print($t2-$t1)")
  echo "round $r: pushwise import $(secs "$pw") s, goaccess $(secs "$ga") s" >&2
  best_pw=$(python3 -c "print(min($best_pw,$pw))"); best_ga=$(python3 -c "print(min($best_ga,$ga))")
done
cat "$WORK/import.txt"
echo "pushwise import: $(python3 -c "print(f'{$LINES/$best_pw:,.0f}')") lines/s (best of $ROUNDS, $(secs "$best_pw") s)"
echo "goaccess:        $(python3 -c "print(f'{$LINES/$best_ga:,.0f}')") lines/s (best of $ROUNDS, $(secs "$best_ga") s)"
echo "ratio pushwise/goaccess: $(python3 -c "print(f'{$best_ga/$best_pw:.2f}')")"
echo
echo "analyzer, one pass over the imported events:"
target/release/pushwise --db "$WORK/p.db" analyze --once
echo
echo "tune (learn on the older 70% of page views, score the newer 30%):"
target/release/pushwise --db "$WORK/p.db" tune | tail -4
