#!/usr/bin/env bash
# What an HTTP/2 rapid-reset attack (CVE-2023-44487) costs a well-behaved client: h2load's rate on
# a fast route alone, then while bench/src/bin/rapidreset.rs sends HEADERS+RST_STREAM pairs for a
# route whose upstream answers after 1 s, reconnecting whenever it is cut. Upstream mode, recording
# on, loopback.
#
#   bash bench/rapid-reset.sh [seconds=10] [rounds=3]
#
# Prints each round's rates, the ratio attacked/alone (the goal: >= 0.5), the attacker's pairs and
# connections, the server's ENHANCE_YOUR_CALM count and its RSS growth.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-3}
command -v h2load >/dev/null || { echo "needs h2load: apt-get install -y nghttp2-client" >&2; exit 1; }

cargo build --release -q --bin pushwise -p pushwise
cargo build --release -q --bin rapidreset -p pushwise-bench
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
source bench/lib.sh

# The upstream: HTTP/1.1 keep-alive; /slow answers after 1 s, anything else at once.
UP_PORT=$(free_port)
python3 - "$UP_PORT" <<'PY' &
import asyncio, sys
async def serve(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            if head.split(b" ", 2)[1].startswith(b"/slow"):
                await asyncio.sleep(1)
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncache-control: public, max-age=60\r\ncontent-length: 3\r\n\r\nok\n")
            await w.drain()
    except Exception:
        w.close()
async def main():
    s = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with s:
        await s.serve_forever()
asyncio.run(main())
PY
sleep 0.5

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  -days 2 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" >/dev/null 2>&1
openssl x509 -in "$WORK/cert.pem" -outform der -out "$WORK/cert.der"
target/release/pushwise --db "$WORK/p.db" serve --upstream "http://127.0.0.1:$UP_PORT" \
  --listen 127.0.0.1:0 --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" \
  --metrics-listen 127.0.0.1:0 --analyze-every 0 >"$WORK/out" 2>"$WORK/err" &
PID=$!
wait_pushwise "$WORK/out"
rss_mib() { awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$PID/status"; }
rate() { h2load -D "$SECS" -c 10 -m 10 -t 1 "https://localhost:$PORT/fast" 2>&1 \
  | awk '/^finished in/ { gsub(",", "", $4); print int($4) }'; }

RSS0=$(rss_mib)
echo "rapid reset against pushwise (upstream mode, /slow answers after 1 s); $SECS s per run"
for r in $(seq "$ROUNDS"); do
  ALONE=$(rate)
  target/release/rapidreset --connect "127.0.0.1:$PORT" --cert-der "$WORK/cert.der" \
    --path /slow --pairs 1000000000 --seconds $((SECS + 2)) >"$WORK/attack.$r" &
  ATTACKER=$!
  sleep 1
  UNDER=$(rate)
  wait "$ATTACKER"
  python3 -c "import sys; a, u = int(sys.argv[1]), int(sys.argv[2]); print(f'round $r: alone {a} req/s, under attack {u} req/s, ratio {u / a:.2f}')" "$ALONE" "$UNDER"
  sed 's/^/  /' "$WORK/attack.$r"
done
echo "ENHANCE_YOUR_CALM closes: $(curl -s "$METRICS" | awk '$1 == "pushwise_limit_hits_total{limit=\"pending_resets\"}" { print $2 }')"
echo "server RSS: $RSS0 MiB before, $(rss_mib) MiB after"
