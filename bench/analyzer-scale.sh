#!/usr/bin/env bash
# The incremental analyzer at production scale: does a pass cost what is new, and does memory
# stay bounded? On generated logs of a site of PAGES pages (crawlers, warm caches, Referer chains):
#
#   bash bench/analyzer-scale.sh [big-lines] [pages]     (defaults: 10000000 and 3000)
#
# 1. A store of 2M imported lines: the first pass (counts everything), then 100k newer lines and
#    the next pass, which should take a small fraction of the first.
# 2. A store of BIG imported lines: import and first pass end to end, then 100k newer lines and
#    the next pass; `analyze --rebuild` and `tune` on the whole store.
# Times are wall-clock seconds and peak RSS comes from GNU time (`/usr/bin/time -f %M`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIG=${1:-10000000}
PAGES=${2:-3000}
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
cargo build --release -q -p pushwise -p pushwise-bench
BIN=target/release/pushwise
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 bench/gensite.py "$WORK/site" "$PAGES" >/dev/null
START=1767225600000 # 2026-01-01; the generator's visits are ~3 s apart, ~4.5 lines each
DAY=86400000

gen() { # lines seed start-ms file
  target/release/genlog --preset kind --site "$WORK/site" --lines "$1" --seed "$2" --start-ms "$3" > "$4"
}
# Runs a pushwise command, prints "label: S s, R MiB peak RSS" and keeps its stdout in $WORK/out.
run() { # label, pushwise args...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$BIN" "$@" > "$WORK/out"
  read -r secs kb < "$WORK/time"
  printf '%-44s %8.2f s %8.0f MiB peak RSS\n' "$label:" "$secs" "$(python3 -c "print($kb/1024)")"
  echo "$secs" > "$WORK/last_secs"
}
field() { python3 -c "import json,sys; print(json.load(open('$WORK/out'))['$1'])"; }
H=(--host example.com --host www.example.com)

echo "site: $PAGES pages; machine: $(nproc) cores"
echo "== 2M imported lines"
gen 2000000 1 "$START" "$WORK/a.log"
gen 100000 2 $((START + 40 * DAY)) "$WORK/a-new.log"
run "import 2M lines" --db "$WORK/a.db" import "${H[@]}" "$WORK/a.log"
run "first pass (2M events)" --db "$WORK/a.db" analyze --once --json
first=$(cat "$WORK/last_secs"); echo "  events read $(field events), page views $(field views), watermark $(field watermark)"
run "import 100k newer lines" --db "$WORK/a.db" import "${H[@]}" "$WORK/a-new.log"
run "next pass (100k new events)" --db "$WORK/a.db" analyze --once --json
next=$(cat "$WORK/last_secs"); echo "  events read $(field events) (+$(field events_again) of open sessions), page views $(field views)"
echo "  next pass / first pass: $(python3 -c "print(f'{$next/$first:.3f}')") (target <= 0.10)"
rm -f "$WORK"/a.db* "$WORK"/a*.log

echo "== $BIG imported lines"
gen "$BIG" 3 "$START" "$WORK/b.log"
gen 100000 4 $((START + 400 * DAY)) "$WORK/b-new.log"
echo "  log: $(du -h "$WORK/b.log" | cut -f1)"
run "import $BIG lines" --db "$WORK/b.db" import "${H[@]}" "$WORK/b.log"
imp=$(cat "$WORK/last_secs")
run "first pass ($BIG events)" --db "$WORK/b.db" analyze --once --json
fp=$(cat "$WORK/last_secs"); echo "  events read $(field events), page views $(field views)"
echo "  import + first pass end to end: $(python3 -c "print(f'{$imp+$fp:.1f}')") s"
run "import 100k newer lines" --db "$WORK/b.db" import "${H[@]}" "$WORK/b-new.log"
run "next pass (100k new events)" --db "$WORK/b.db" analyze --once --json
echo "  events read $(field events) (+$(field events_again) of open sessions), page views $(field views) (target <= 1 s)"
run "analyze --rebuild (all events)" --db "$WORK/b.db" analyze --rebuild --json
echo "  events read $(field events), page views $(field views)"
run "tune (newest 500,000 events, the default)" --db "$WORK/b.db" tune --json
echo "  database: $(du -h "$WORK/b.db" | cut -f1)"
