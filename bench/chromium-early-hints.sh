#!/usr/bin/env bash
# Does a real browser use pushwise's 103 Early Hints? Headless Chromium (which refuses push) loads a
# page whose application takes 1 s to answer; pushwise hints the learned set at once. The check:
# Chromium requested the hinted assets before the HTML arrived, received a 103, and did not log
# "preloaded ... but not used".
#
#   bash bench/chromium-early-hints.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "needs chromium: apt-get install -y chromium" >&2; exit 1; }
cargo build --release -q -p pushwise -p pushwise-bench
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
DELAY_MS=1000

# An application that serves examples/site, thinking DELAY_MS before each HTML page.
APP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$APP_PORT" "$(realpath examples/site)" "$DELAY_MS" <<'PY' &
import functools, http.server, sys, time
port, root, delay = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) / 1000
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/" or self.path.endswith(".html"):
            time.sleep(delay)
        super().do_GET()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(H, directory=root)).serve_forever()
PY
PIDS+=($!)

# Learn sets from a synthetic log of the same site.
target/release/genlog --preset kind --site examples/site --lines 20000 > "$WORK/access.log"
target/release/pushwise --db "$WORK/p.db" import --host example.com --host www.example.com "$WORK/access.log" >/dev/null
target/release/pushwise --db "$WORK/p.db" analyze --once >/dev/null
UA="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"
echo "learned set for / (as headless Chromium entering the site):"
target/release/pushwise --db "$WORK/p.db" plan --page / --user-agent "$UA"

# A certificate Chromium trusts by its key: it never reuses a response that came with a certificate
# error, so under --ignore-certificate-errors every preloaded asset would be fetched again.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" >/dev/null 2>&1
SPKI=$(openssl x509 -pubkey -noout -in "$WORK/cert.pem" | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64)
target/release/pushwise --db "$WORK/p.db" serve --upstream "http://127.0.0.1:$APP_PORT" --listen 127.0.0.1:0 \
  --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" \
  --holdout 0 --analyze-every 0 --batch-interval-ms 20 >"$WORK/pw.out" 2>"$WORK/pw.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$WORK/pw.out" 2>/dev/null && break; sleep 0.05; done
PORT=$(grep -o '[0-9]*$' "$WORK/pw.out")
sleep 0.5

chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$WORK/profile" --ignore-certificate-errors-spki-list="$SPKI" \
  --enable-logging=stderr --v=0 --log-net-log="$WORK/netlog.json" --virtual-time-budget=5000 \
  --dump-dom "https://localhost:$PORT/" >"$WORK/dom.html" 2>"$WORK/chromium.log" || true
sleep 0.5
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

python3 - "$WORK" "$DELAY_MS" <<'PY'
import json, sqlite3, sys
work, delay = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(f"{work}/p.db")
page = db.execute("SELECT ts_ms, conn_id FROM events WHERE source IS NULL AND path = '/' AND is_page = 1 ORDER BY id LIMIT 1").fetchone()
if not page:
    sys.exit("FAIL: Chromium's page request was not recorded")
hinted = [r[0] for r in db.execute("SELECT path FROM events WHERE source IS NULL AND push = 4 ORDER BY id")]
fetched = {r[0]: r[1] - page[0] for r in db.execute(
    "SELECT path, MIN(ts_ms) FROM events WHERE source IS NULL AND push = 0 AND is_page = 0 GROUP BY path")}
netlog = open(f"{work}/netlog.json", errors="replace").read()
log = open(f"{work}/chromium.log", errors="replace").read()
got_103 = ":status: 103" in netlog or "103 Early Hints" in netlog or '"103"' in netlog
unused = "preloaded using link preload but not used" in log
print(f"hinted by pushwise (103): {len(hinted)} assets: {' '.join(hinted)}")
print(f"103 seen in Chromium's net log: {got_103}")
early = [p for p in hinted if p in fetched and fetched[p] < delay]
print(f"hinted assets Chromium requested before the HTML arrived (< {delay} ms after the page request):")
for p in hinted:
    t = fetched.get(p)
    print(f"  {p}: {'not requested' if t is None else f'{t} ms'}")
print(f"'preloaded but not used' warnings in Chromium's log: {unused}")
counts = dict(db.execute(
    "SELECT path, COUNT(*) FROM events WHERE source IS NULL AND push = 0 AND is_page = 0 GROUP BY path"))
again = [p for p in hinted if counts.get(p, 0) > 1]
print(f"hinted assets requested again once the page asked for them (preload not reused): {again or 'none'}")
ok = hinted and len(early) == len(hinted) and not unused and not again
print("PASS: Chromium used the Early Hints preloads" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
