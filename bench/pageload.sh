#!/usr/bin/env bash
# Page-load benchmark: pushwise (no push, learned push, oracle push, Early Hints, repeat visits)
# against nginx 1.22 (http2_push) and H2O 2.2 (push from Link headers, casper) pushing the same
# learned sets, same files, each behind the same userspace delay proxy at RTT.
#
#   bash bench/pageload.sh [rtt-ms] [runs-per-page]
#
# Two clients: the browser-like loader (bench/src/loader.rs: follows CSS url()s, uses pushes,
# acts on 103) and nghttp -a (HTML-linked assets only, accepts pushes, ignores 103).
set -euo pipefail
cd "$(dirname "$0")/.."
RTT=${1:-50}
RUNS=${2:-10}
for t in nginx h2o nghttp; do command -v $t >/dev/null || { echo "needs $t (apt-get install -y nginx h2o nghttp2-client)" >&2; exit 1; }; done
cargo build --release -q -p pushwise -p pushwise-bench
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
if [ -n "${KEEP:-}" ]; then trap - EXIT; echo "work dir: $WORK" >&2; fi
SITE=$(realpath examples/site)

echo "learning with the demo (traffic, analyze, tune) ..." >&2
target/release/pushwise demo --json --rtt-ms "$RTT" > "$WORK/demo.json"
DB=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['database'])" "$WORK/demo.json")
ORACLE_DB="$(dirname "$DB")/oracle.db"

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj "/CN=localhost" >/dev/null 2>&1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Peer configurations pushing the learned set of each page (home as /index.html: peers match paths).
NGINX_PORT=$(free_port); H2O_PORT=$(free_port)
python3 - "$WORK" "$SITE" "$NGINX_PORT" "$H2O_PORT" <<'PY'
import json, sys
work, site, nport, hport = sys.argv[1:5]
demo = json.load(open(f"{work}/demo.json"))
sets = {s["page"]: s["assets"] for s in demo["sets"]}
def page_file(p): return p + "index.html" if p.endswith("/") else p
locs = "".join(
    f"    location = {page_file(p)} {{\n" + "".join(f"      http2_push {a};\n" for a in assets) + "    }\n"
    for p, assets in sets.items())
open(f"{work}/nginx.conf", "w").write(f"""worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  include /etc/nginx/mime.types;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{nport} ssl http2;
    ssl_certificate {work}/cert.pem;
    ssl_certificate_key {work}/key.pem;
    root {site};
{locs}  }}
}}
""")
paths = "".join(
    f'      "{page_file(p)}":\n        file.file: "{site}{page_file(p)}"\n' +
    (('        header.add: "link: ' + ", ".join(f"<{a}>; rel=preload" for a in assets) + '"\n') if assets else "")
    for p, assets in sets.items())
open(f"{work}/h2o.conf", "w").write(f"""num-threads: 2
http2-casper: ON
hosts:
  "localhost:{hport}":
    listen:
      port: {hport}
      host: 127.0.0.1
      ssl:
        certificate-file: {work}/cert.pem
        key-file: {work}/key.pem
    paths:
{paths}      "/":
        file.dir: "{site}"
""")
PY
nginx -c "$WORK/nginx.conf" -p "$WORK" -g 'daemon off;' 2>"$WORK/nginx.stderr" & PIDS+=($!)
h2o -c "$WORK/h2o.conf" >"$WORK/h2o.log" 2>&1 & PIDS+=($!)

start_pushwise() { # db → port
  local out="$WORK/pw-$RANDOM.out"
  target/release/pushwise --db "$1" serve --root "$SITE" --listen 127.0.0.1:0 --holdout 0 --no-record \
    --analyze-every 0 >"$out" 2>>"$WORK/pushwise.err" & PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$out" 2>/dev/null && break; sleep 0.05; done
  grep -o '[0-9]*$' "$out"
}
PW_PORT=$(start_pushwise "$DB")
OR_PORT=$(start_pushwise "$ORACLE_DB")
sleep 1

PAGES=$(python3 -c "import json,sys; print(' '.join(s['page'] for s in json.load(open(sys.argv[1]))['sets']))" "$WORK/demo.json")
PEER_PAGES=$(for p in $PAGES; do case $p in */) echo -n "${p}index.html ";; *) echo -n "$p ";; esac; done)
loader() { # label port pages... flags
  local label=$1 port=$2; shift 2
  target/release/pageload --server "127.0.0.1:$port" --rtt-ms "$RTT" --runs "$RUNS" --label "$label" "$@"
}
pages_args() { for p in $1; do echo -n "--page $p "; done; }
{
  loader "pushwise no push" "$PW_PORT" $(pages_args "$PAGES") --no-push
  loader "pushwise learned push" "$PW_PORT" $(pages_args "$PAGES")
  loader "pushwise oracle push" "$OR_PORT" $(pages_args "$PAGES")
  loader "pushwise Early Hints only" "$PW_PORT" $(pages_args "$PAGES") --no-push --hints
  loader "pushwise no push, repeat visit" "$PW_PORT" $(pages_args "$PAGES") --no-push --repeat
  loader "pushwise learned push + digest, repeat" "$PW_PORT" $(pages_args "$PAGES") --repeat
  loader "nginx 1.22 no push" "$NGINX_PORT" $(pages_args "$PEER_PAGES") --no-push
  loader "nginx 1.22 http2_push (learned set)" "$NGINX_PORT" $(pages_args "$PEER_PAGES")
  loader "h2o 2.2 push + casper (learned set)" "$H2O_PORT" $(pages_args "$PEER_PAGES")
} > "$WORK/loader.jsonl"

# nghttp -a through the same proxy: HTML-linked assets only; total = the last responseEnd, which
# nghttp measures from the end of its connection setup (so TLS setup is not included here).
UA="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
nghttp_run() { # label port pages... flags → median/p90 ms
  local label=$1 port=$2 pages=$3 flags=$4
  local proxy_out="$WORK/proxy-$RANDOM.out"
  target/release/delayproxy --upstream "127.0.0.1:$port" --rtt-ms "$RTT" >"$proxy_out" & local ppid=$!
  for _ in $(seq 100); do grep -q "proxy on" "$proxy_out" 2>/dev/null && break; sleep 0.05; done
  local pport; pport=$(grep -o '[0-9]*$' "$proxy_out")
  local samples=()
  for _ in $(seq "$RUNS"); do
    for p in $pages; do
      # -s prints per-stream responseEnd relative to connect; the page load ends at the last one.
      # A browser User-Agent: pushwise learns (rightly) that non-browsers need no push.
      t=$(nghttp -nas $flags -H "user-agent: $UA" "https://localhost:$pport$p" 2>/dev/null | awk '$2 ~ /^\+[0-9.]+(ms|us|s)$/ {v=$2; sub(/^\+/,"",v); if (v ~ /ms$/) {sub(/ms$/,"",v); v=v+0} else if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else {sub(/s$/,"",v); v=v*1000}; if (v+0>m+0) m=v+0} END {print m+0}')
      samples+=("$t")
    done
  done
  kill $ppid 2>/dev/null || true
  python3 - "$label" "${samples[@]}" <<'PY'
import json, statistics, sys
label, xs = sys.argv[1], sorted(float(x) for x in sys.argv[2:])
p90 = xs[round((len(xs) - 1) * 0.9)]
print(json.dumps({"label": label, "client": "nghttp -a", "median_ms": statistics.median(xs), "p90_ms": p90, "loads": len(xs)}))
PY
}
{
  nghttp_run "pushwise no push" "$PW_PORT" "$PAGES" "--no-push"
  nghttp_run "pushwise learned push" "$PW_PORT" "$PAGES" ""
  nghttp_run "pushwise oracle push" "$OR_PORT" "$PAGES" ""
  nghttp_run "nginx 1.22 http2_push (learned set)" "$NGINX_PORT" "$PEER_PAGES" ""
  nghttp_run "h2o 2.2 push + casper (learned set)" "$H2O_PORT" "$PEER_PAGES" ""
} > "$WORK/nghttp.jsonl"

python3 - "$WORK" "$RTT" "$RUNS" <<'PY'
import json, sys
work, rtt, runs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(f"{work}/loader.jsonl")]
base = rows[0]["median_ms"]
print(f"\nbrowser-like loader, {rtt} ms RTT, {runs} loads per page, cold cache unless 'repeat':")
print(f"| configuration | median ms | p90 ms | vs pushwise no push | pushes used | pushes wasted |")
print(f"|---|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['label']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {base / r['median_ms']:.2f}x | {r['pushed_used']} | {r['pushed_wasted']} |")
rows = [json.loads(l) for l in open(f"{work}/nghttp.jsonl")]
print(f"\nnghttp -a (HTML-linked assets only; ignores 103; from connection setup end), {rtt} ms RTT:")
print(f"| configuration | median ms | p90 ms |")
print(f"|---|---:|---:|")
for r in rows:
    print(f"| {r['label']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} |")
demo = json.load(open(f"{work}/demo.json"))
print("\nlearned sets (browser entering the site):")
for s in demo["sets"]:
    print(f"  {s['page']}: {' '.join(s['assets'])}")
PY
