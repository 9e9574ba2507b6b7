#!/usr/bin/env bash
# Soak: pushwise under steady load for a long while, recording on and the analyzer running, then
# SIGTERM. Reports errors, peak RSS, recorder drops, events recorded, analyzer passes and the
# database's size, and checks that every answered request was recorded.
#
#   bash bench/soak.sh [seconds=600] [connections=1000] [streams-per-connection=10]
#
# Loopback, the example site (pages and assets in turn), h2load as the client with a browser
# User-Agent, `--analyze-every 10`, `--max-streams 16384` (1,000 x 10 = 10,000 streams in flight
# is more than the default cap of 8,192, which would refuse some by design; MAX_STREAMS=8192
# shows that). Bounded: h2load runs for SECONDS, the server gets 60 s to
# drain after SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
CONNS=${2:-1000}
STREAMS=${3:-10}
command -v h2load >/dev/null || { echo "needs h2load: apt-get install -y nghttp2-client" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true

cargo build --release -q --bin pushwise
BIN=target/release/pushwise
UA='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'
WORK=$(mktemp -d)
source bench/lib.sh
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" --db "$WORK/soak.db" serve --root examples/site --listen 127.0.0.1:0 \
  --metrics-listen 127.0.0.1:0 --analyze-every 10 --max-connections 4096 \
  --max-streams "${MAX_STREAMS:-16384}" \
  >"$WORK/out" 2>"$WORK/err" &
PID=$!
wait_pushwise "$WORK/out"
metric() { curl -s "$METRICS" | awk -v m="$1" '$1 == m { print $2 }'; }

URLS=()
for p in / /products.html /about.html /contact.html /css/site.css /js/app.js /img/logo.svg; do
  URLS+=("https://localhost:$PORT$p")
done

# Peak RSS as the kernel counts it (VmHWM), sampled once a second as well for the curve's end.
(while kill -0 "$PID" 2>/dev/null; do
  awk '/VmHWM|VmRSS/ { printf "%s %s ", $1, $2 } END { print "" }' "/proc/$PID/status" \
    >>"$WORK/rss" 2>/dev/null || true
  sleep 1
done) &

echo "soak: $CONNS connections x $STREAMS streams for $SECS s against pushwise (pid $PID, port $PORT)"
START=$(date +%s)
h2load -D "$SECS" -c "$CONNS" -m "$STREAMS" -t "$(nproc)" -H "user-agent: $UA" "${URLS[@]}" \
  >"$WORK/h2load" 2>&1 || true
grep -E '^(finished in|requests:|status codes:|traffic:)' "$WORK/h2load" || tail -5 "$WORK/h2load"

PEAK_KB=$(tail -1 "$WORK/rss" | awk '{ for (i = 1; i < NF; i++) if ($i == "VmHWM:") print $(i + 1) }')
END_KB=$(tail -1 "$WORK/rss" | awk '{ for (i = 1; i < NF; i++) if ($i == "VmRSS:") print $(i + 1) }')
curl -s "$METRICS" | grep '^pushwise_limit_hits_total' | awk '$2 != 0' >"$WORK/limits" || true
RUNS=$(metric pushwise_analyzer_runs_total)
FAILURES=$(metric pushwise_analyzer_failures_total)
kill -TERM "$PID"
for _ in $(seq 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then echo "FAIL: pushwise still running 60 s after SIGTERM"; exit 1; fi
wait "$PID" && CODE=0 || CODE=$?

read -r OK FAILED ERRORED < <(awk '/^requests:/ { print $8, $10, $12 }' "$WORK/h2load")
EVENTS=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM event_log").fetchone()[0])' "$WORK/soak.db")
WRITTEN=$(grep -o 'written=[0-9]*' "$WORK/err" | tail -1 | cut -d= -f2)
DROPPED=$(grep -o 'dropped=[0-9]*' "$WORK/err" | tail -1 | cut -d= -f2)
DB_MB=$(du -m "$WORK/soak.db" | cut -f1)
echo "duration:            $(( $(date +%s) - START )) s (load $SECS s, then SIGTERM)"
echo "requests:            ${OK} succeeded, ${FAILED} failed, ${ERRORED} errored"
echo "peak RSS:            $(( ${PEAK_KB:-0} / 1024 )) MiB (at the end of load: $(( ${END_KB:-0} / 1024 )) MiB)"
echo "recorder:            ${WRITTEN:-?} written, ${DROPPED:-?} dropped; ${EVENTS} events in the database (${DB_MB} MiB)"
echo "analyzer:            ${RUNS:-?} passes, ${FAILURES:-?} failed"
echo "limits hit:          $(tr '\n' ' ' <"$WORK/limits")"
echo "exit after SIGTERM:  $CODE"
STATUS=0
[ "$CODE" = 0 ] || { echo "FAIL: exit code $CODE"; STATUS=1; }
[ "${ERRORED:-1}" = 0 ] && [ "${FAILED:-1}" = 0 ] || { echo "FAIL: requests failed or errored"; STATUS=1; }
# Every event the recorder accepted is in the database (pushes and skips add events beyond
# h2load's responses, so compare with the recorder's own count, not with h2load's).
[ "$EVENTS" = "${WRITTEN:-x}" ] || { echo "FAIL: $EVENTS events stored, recorder wrote ${WRITTEN:-?}"; STATUS=1; }
exit $STATUS
