#!/usr/bin/env bash
# Did a change move throughput? Paired rounds: two pushwise binaries side by side, loaded
# alternately (which goes first alternates too), one ratio NEW/OLD per round; prints the median,
# mean, min and max of the ratios. Finer than ab.sh on this noisy machine: each pair shares its
# moment's conditions.
#
#   bash bench/ab-pairs.sh OLD_BIN NEW_BIN [rounds] [seconds-per-run]
#   URLP=page-10k.html bash bench/ab-pairs.sh OLD_BIN NEW_BIN 8 3
#
# h2load -c 50 -m 10 -t 2 over TLS + HTTP/2, recording on, on the 1 KB asset unless URLP names
# the 10 KB page.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2; ROUNDS=${3:-12}; SECS=${4:-3}; URLP=${URLP:-asset-1k.css}
command -v h2load >/dev/null || { echo "needs h2load: apt-get install -y nghttp2-client" >&2; exit 1; }
source bench/lib.sh
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
bench_files "$WORK"
start() { # binary, name → port
  "$1" --db "$WORK/$2.db" serve --root "$WORK/www" --listen 127.0.0.1:0 --tls-cert "$WORK/cert.pem" \
    --tls-key "$WORK/key.pem" --analyze-every 0 --batch-size 5000 >"$WORK/$2.out" 2>"$WORK/$2.err" &
  for _ in $(seq 100); do grep -q listening "$WORK/$2.out" 2>/dev/null && break; sleep 0.05; done
  grep -o '[0-9]*$' "$WORK/$2.out"
}
PORT_OLD=$(start "$OLD" old)
PORT_NEW=$(start "$NEW" new)
sleep 0.5
UA='Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0'
load() { h2load_rps "https://127.0.0.1:$1/$URLP" -D "$SECS" -c 50 -m 10 -t 2 -H "user-agent: $UA"; }
RATIOS=()
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 0 ]; then a=$(load "$PORT_OLD"); b=$(load "$PORT_NEW")
  else b=$(load "$PORT_NEW"); a=$(load "$PORT_OLD"); fi
  RATIOS+=("$(python3 -c "print($b/$a)")")
  echo "round $r old $a new $b req/s" >&2
done
python3 - "$URLP" "${RATIOS[@]}" <<'PY'
import statistics, sys
url, r = sys.argv[1], [float(x) for x in sys.argv[2:]]
print(f"{url}: new/old per pair, median {statistics.median(r):.3f}, mean {statistics.mean(r):.3f}, "
      f"min {min(r):.3f}, max {max(r):.3f} ({len(r)} pairs)")
PY
