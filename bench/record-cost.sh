#!/usr/bin/env bash
# What recording costs: h2load throughput of pushwise with recording on vs `--no-record`, same
# binary, same files, side by side on this machine.
#
#   bash bench/record-cost.sh [pairs] [seconds-per-run]
#
# RECORD_ARGS adds flags to the recording server only, e.g. RECORD_ARGS="--recorder-nice 0" to
# measure the writer at the serving threads' priority.
#
# Why this shape: on this 2-core VM consecutive identical h2load runs differ by up to ±10%, more
# than the effect being measured, and the drift is slow. So the two servers are loaded in
# alternating pairs (A B, then B A, ...), each pair gives one cost ratio, and the result is the
# median of the ratios with a bootstrap 90% interval, not a best-of. The server processes'
# CPU time per request (from /proc) is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-20}
SECS=${2:-4}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-10}
read -r -a RECORD_ARGS <<<"${RECORD_ARGS:-}"
command -v h2load >/dev/null || { echo "needs h2load: apt-get install -y nghttp2-client" >&2; exit 1; }

cargo build --release -q --bin pushwise
BIN=target/release/pushwise
WORK=$(mktemp -d)
# Servers started inside <(...) are not this shell's jobs: their pids go to $WORK/pids.
trap 'kill $(jobs -p) $(cat "$WORK/pids" 2>/dev/null) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/www"
python3 - "$WORK/www" <<'PY'
import sys
body = "".join(f"<p>pushwise benchmark paragraph {i:04d} lorem ipsum dolor sit amet.</p>\n" for i in range(150))
page = f"<!doctype html><html><head><title>10k</title></head><body>\n{body}</body></html>\n"
open(f"{sys.argv[1]}/page-10k.html", "w").write((page + " " * 10240)[:10240])
PY
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  -days 2 -subj "/CN=localhost" >/dev/null 2>&1

start() { # name, extra args... → "port pid"
  local name=$1; shift
  "$BIN" --db "$WORK/$name.db" serve --root "$WORK/www" --listen 127.0.0.1:0 --tls-cert "$WORK/cert.pem" \
    --tls-key "$WORK/key.pem" --analyze-every 0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  echo "$pid" >>"$WORK/pids"
  for _ in $(seq 100); do grep -q listening "$WORK/$name.out" 2>/dev/null && break; sleep 0.05; done
  echo "$(grep -o '[0-9]*$' "$WORK/$name.out") $pid"
}
read -r OFF_PORT OFF_PID < <(start off --no-record)
read -r ON_PORT ON_PID < <(start on "${RECORD_ARGS[@]}")
sleep 0.5

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One run: prints "req/s cpu-ticks-used succeeded" for the server on $1 (port), $2 (pid).
run() {
  local before after out
  before=$(cpu_ticks "$2")
  out=$(h2load -D "$SECS" -c "$CONNS" -m "$STREAMS" -t 2 "https://127.0.0.1:$1/page-10k.html" 2>/dev/null)
  sleep 0.3 # let the recorder finish the run's last batch: its CPU belongs to these requests
  after=$(cpu_ticks "$2")
  echo "$(awk '/^finished in/ {for(i=1;i<=NF;i++) if ($i=="req/s,") print $(i-1)}' <<<"$out")" \
    "$((after - before))" "$(awk '/^requests:/ {for(i=1;i<=NF;i++) if ($i=="succeeded,") print $(i-1)}' <<<"$out")"
}

: >"$WORK/runs"
for p in $(seq "$PAIRS"); do
  if (( p % 2 )); then
    off=$(run "$OFF_PORT" "$OFF_PID"); on=$(run "$ON_PORT" "$ON_PID")
  else
    on=$(run "$ON_PORT" "$ON_PID"); off=$(run "$OFF_PORT" "$OFF_PID")
  fi
  echo "pair $p: --no-record ${off%% *} req/s, recording ${on%% *} req/s" >&2
  echo "$off $on" >>"$WORK/runs"
done

sleep 1
python3 - "$WORK/runs" "$SECS" "$(getconf CLK_TCK)" "$PAIRS" "$CONNS" "$STREAMS" "$WORK/on.db" <<'PY'
import random, sqlite3, statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
secs, hz = float(sys.argv[2]), float(sys.argv[3])
off = [r[0] for r in rows]; on = [r[3] for r in rows]
cost = [(1 - b / a) * 100 for a, b in zip(off, on)]
served = int(sum(r[5] for r in rows))
recorded = sqlite3.connect(sys.argv[7]).execute("SELECT COUNT(*) FROM event_log").fetchone()[0]
random.seed(1)
boot = sorted(st.median(random.choices(cost, k=len(cost))) for _ in range(5000))
lo, hi = boot[int(0.05 * len(boot))], boot[int(0.95 * len(boot))]
cpu_off = sum(r[1] for r in rows) / hz / sum(r[2] for r in rows) * 1e6
cpu_on = sum(r[4] for r in rows) / hz / served * 1e6
print(f"h2load -D {secs:g} -c {sys.argv[5]} -m {sys.argv[6]} -t 2, 10 KB page, {sys.argv[4]} alternating pairs")
print(f"--no-record: median {st.median(off):,.0f} req/s (min {min(off):,.0f}, max {max(off):,.0f})")
print(f"recording:   median {st.median(on):,.0f} req/s (min {min(on):,.0f}, max {max(on):,.0f})")
print(f"recording cost, median of pair ratios: {st.median(cost):.1f}% (bootstrap 90% interval {lo:.1f}% .. {hi:.1f}%)")
print(f"responses to the recording server: {served:,}; rows in its database: {recorded:,}")
print(f"server CPU per request: --no-record {cpu_off:.1f} us, recording {cpu_on:.1f} us (+{cpu_on - cpu_off:.1f} us, +{(cpu_on / cpu_off - 1) * 100:.1f}%)")
PY
