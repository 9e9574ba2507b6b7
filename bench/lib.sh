# Shared by the benchmark scripts: a free loopback port, and nginx serving a directory over TLS +
# HTTP/2, tuned for a fair comparison (keepalive_requests high: h2load does not reconnect).
# Source it after `cd` to the repository root.

# h2load_rps URL [h2load options...]: runs h2load on URL and prints its req/s; fails (exit 1, with
# the status counts on stderr) when any response was 4xx or 5xx or none was 2xx, so an error page
# served fast is never reported as throughput. 3xx are let through: h2load counts a 103 Early
# Hints response there (one per connection on the hints path).
h2load_rps() {
  local url=$1; shift
  local out
  out=$(h2load "$@" "$url" 2>/dev/null) || true
  local codes
  codes=$(awk '/^status codes:/ {print $3, $5, $7, $9}' <<<"$out")
  read -r ok s3 s4 s5 <<<"${codes:-0 0 0 0}"
  if [ "${ok:-0}" = 0 ] || [ "$s4" != 0 ] || [ "$s5" != 0 ]; then
    echo "h2load $url: error responses (2xx $ok, 3xx $s3, 4xx $s4, 5xx $s5)" >&2
    return 1
  fi
  awk '/^finished in/ {for(i=1;i<=NF;i++) if ($i=="req/s,") print $(i-1)}' <<<"$out"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_nginx WORK ROOT CERT KEY PORT: writes WORK/nginx/nginx.conf and starts nginx in the
# background (a job of the calling shell). Started as root, nginx's workers run as an
# unprivileged user, which must be able to read the files: without it every request is a 403
# (ab.sh measured those as nginx's throughput until 2026-12-04; h2o's start made them readable
# in h2load.sh).
start_nginx() {
  local work=$1 root=$2 cert=$3 key=$4 port=$5
  mkdir -p "$work/nginx/logs"
  if [ "$(id -u)" = 0 ]; then
    chmod -R a+rX "$root"
    chmod a+x "$work"
  fi
  cat > "$work/nginx/nginx.conf" <<NGX
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  sendfile on;
  keepalive_requests 10000000;
  http2_max_requests 10000000;
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    root $root;
  }
}
NGX
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' 2>"$work/nginx/stderr" &
}

# bench_files DIR: the throughput benchmarks' files, a 10 KB page and a 1 KB asset, and a
# self-signed certificate for localhost in DIR/cert.pem and DIR/key.pem.
bench_files() {
  local dir=$1
  mkdir -p "$dir/www"
  python3 - "$dir/www" <<'PY'
import sys
root = sys.argv[1]
body = "".join(f"<p>pushwise benchmark paragraph {i:04d} lorem ipsum dolor sit amet.</p>\n" for i in range(150))
page = f"<!doctype html><html><head><title>10k</title></head><body>\n{body}</body></html>\n"
open(f"{root}/page-10k.html", "w").write((page + " " * 10240)[:10240])
open(f"{root}/asset-1k.css", "w").write(("/* 1 KB */ " + "a{color:red}" * 100)[:1024])
PY
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" \
    -days 2 -subj "/CN=localhost" >/dev/null 2>&1
}

# start_h2o WORK ROOT CERT KEY PORT: writes WORK/h2o/h2o.conf and starts h2o (Debian's h2o 2.2) in
# the background, one thread per core. As root h2o needs an unprivileged `user:`, which must be
# able to read the files and the key: everything it serves is made world-readable here.
start_h2o() {
  local work=$1 root=$2 cert=$3 key=$4 port=$5
  mkdir -p "$work/h2o"
  local user_line=""
  if [ "$(id -u)" = 0 ]; then
    user_line="user: nobody"
    chmod -R a+rX "$root"
    chmod a+r "$cert" "$key"
    chmod a+x "$work"
    chmod a+rwx "$work/h2o"
  fi
  cat > "$work/h2o/h2o.conf" <<H2O
$user_line
num-threads: $(nproc)
error-log: $work/h2o/error.log
hosts:
  "localhost":
    listen:
      port: $port
      host: 127.0.0.1
      ssl:
        certificate-file: $cert
        key-file: $key
    paths:
      "/":
        file.dir: $root
H2O
  h2o -c "$work/h2o/h2o.conf" >"$work/h2o/stdout" 2>&1 &
}

# wait_pushwise OUT: waits until `pushwise serve` (started with --listen 127.0.0.1:0 and
# --metrics-listen, its standard output in OUT) has printed its addresses; sets PORT and METRICS.
wait_pushwise() {
  local out=$1
  for _ in $(seq 200); do grep -q '^metrics on' "$out" 2>/dev/null && break; sleep 0.05; done
  PORT=$(sed -n 's/^listening on https:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$out")
  METRICS=$(sed -n 's/^metrics on //p' "$out")
}
