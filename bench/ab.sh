#!/usr/bin/env bash
# Did a change move throughput? Two pushwise binaries and nginx side by side, loaded in turn.
#
#   bash bench/ab.sh OLD_BIN NEW_BIN [seconds-per-run] [rounds]
#
# Both binaries serve the same files with the same certificate, recording on (the default), and
# are loaded alternately with h2load (-c 50 -m 10 -t 2) on a 10 KB page and a 1 KB asset, ROUNDS
# times; nginx runs beside them as the fixed reference. Prints the median and best req/s of each
# and the NEW/OLD ratios. Build OLD_BIN from the older commit first, e.g.
#   git worktree add /tmp/old REV && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/oldtarget cargo build --release --bin pushwise)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2; SECS=${3:-5}; ROUNDS=${4:-5}
command -v h2load >/dev/null && command -v nginx >/dev/null || {
  echo "needs h2load and nginx: apt-get install -y nghttp2-client nginx-light" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'kill $(jobs -p) $(cat "$WORK/pids" 2>/dev/null) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
source bench/lib.sh
bench_files "$WORK"
NGINX_PORT=$(free_port)
start_nginx "$WORK" "$WORK/www" "$WORK/cert.pem" "$WORK/key.pem" "$NGINX_PORT"
start() { # name bin
  "$2" --db "$WORK/$1.db" serve --root "$WORK/www" --listen 127.0.0.1:0 --tls-cert "$WORK/cert.pem" \
    --tls-key "$WORK/key.pem" --analyze-every 0 >"$WORK/$1.out" 2>"$WORK/$1.err" &
  echo $! >>"$WORK/pids"
  for _ in $(seq 100); do grep -q listening "$WORK/$1.out" 2>/dev/null && break; sleep 0.05; done
  grep -o '[0-9]*$' "$WORK/$1.out"
}
OLD_PORT=$(start old "$OLD"); NEW_PORT=$(start new "$NEW"); sleep 0.5
run() { h2load_rps "$1" -D "$SECS" -c 50 -m 10 -t 2; }
declare -A R
for r in $(seq "$ROUNDS"); do
  for path in page-10k.html asset-1k.css; do
    # Alternate which pushwise goes first, so neither always follows nginx.
    if (( r % 2 )); then order="old new nginx"; else order="new old nginx"; fi
    for who in $order; do
      case $who in old) p=$OLD_PORT;; new) p=$NEW_PORT;; nginx) p=$NGINX_PORT;; esac
      v=$(run "https://127.0.0.1:$p/$path"); R[$who/$path]="${R[$who/$path]:-} $v"
      echo "round $r $who $path $v req/s" >&2
    done
  done
done
stat() { echo ${R[$1]} | tr ' ' '\n' | grep -v '^$' | python3 -c "import sys,statistics as s; v=[float(x) for x in sys.stdin]; print(f'{s.median(v):.0f} {max(v):.0f}')"; }
echo
echo "h2load -D $SECS -c 50 -m 10 -t 2, $ROUNDS rounds, recording on; median and best req/s"
for path in page-10k.html asset-1k.css; do
  read -r om ob <<<"$(stat old/$path)"; read -r nm nb <<<"$(stat new/$path)"; read -r gm gb <<<"$(stat nginx/$path)"
  echo "$path: old $om (best $ob), new $nm (best $nb), nginx $gm (best $gb); new/old median $(python3 -c "print(f'{$nm/$om:.3f}')"), best $(python3 -c "print(f'{$nb/$ob:.3f}')")"
done
