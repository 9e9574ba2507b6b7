#!/usr/bin/env bash
# The fleet store beside the SQLite file, on this machine: recorder write throughput (events/s
# through the recorder's own writer, batches of 2000) and an analyzer pass over 2M imported lines,
# each into a fresh SQLite file and a fresh database on a local PostgreSQL server started here
# (Debian `postgresql`, durable defaults: fsync on, synchronous_commit on).
#
#   bash bench/fleet.sh [events] [lines] [runs]     (defaults: 1000000 2000000 3; lines 0: writer only)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
LINES=${2:-2000000}
RUNS=${3:-3}
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "needs the Debian package postgresql" >&2; exit 1; }
cargo build --release -q -p pushwise -p pushwise-bench
BIN=target/release/pushwise
WORK=$(mktemp -d)
chmod 755 "$WORK"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres -A trust -E UTF8 --locale=C >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -o "-p $PORT -h 127.0.0.1 -k $WORK" -w start >/dev/null
trap 'as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null; rm -rf "$WORK"' EXIT
PG="postgres://postgres@127.0.0.1:$PORT"
fresh_pg() { "$PGBIN/psql" -X -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" 2>/dev/null; echo "$PG/$1"; }

echo "machine: $(nproc) cores; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1 (fsync on)"
echo "== recorder writer, $EVENTS events in batches of 2000, runs alternating (best of $RUNS)"
# live: the recorder's events (PostgreSQL: COPY); import: with a source line each (PostgreSQL:
# the deduplicating INSERT ... SELECT FROM UNNEST).
declare -A best
for run in $(seq "$RUNS"); do
  for mode in sqlite-live postgres-live postgres-import sqlite-import; do
    if [ "${mode%%-*}" = sqlite ]; then db="$WORK/w.db"; rm -f "$WORK"/w.db*; else db=$(fresh_pg w); fi
    flag=(); [ "${mode#*-}" = import ] && flag=(--import)
    out=$(target/release/storewrite --db "$db" --events "$EVENTS" --batch 2000 "${flag[@]}")
    eps=$(echo "$out" | python3 -c "import json,sys; print(int(json.load(sys.stdin)['events_per_sec']))")
    echo "  run $run $mode: $eps events/s"
    [ "$eps" -gt "${best[$mode]:-0}" ] && best[$mode]=$eps
  done
done
rm -f "$WORK"/w.db*
for mode in sqlite-live postgres-live sqlite-import postgres-import; do echo "$mode best: ${best[$mode]} events/s"; done

echo "== two writers at once into one PostgreSQL database, $((EVENTS / 2)) events each (a fleet of two)"
for run in $(seq "$RUNS"); do
  db=$(fresh_pg w)
  target/release/storewrite --db "$db" --events $((EVENTS / 2)) > "$WORK/a.json" &
  target/release/storewrite --db "$db" --events $((EVENTS / 2)) > "$WORK/b.json"
  wait
  python3 - "$WORK/a.json" "$WORK/b.json" "$EVENTS" <<'EOF'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
longer = max(a["seconds"], b["seconds"])
print(f"  {a['seconds']:.2f} s and {b['seconds']:.2f} s: {int(sys.argv[3]) / longer:,.0f} events/s together")
EOF
  "$PGBIN/psql" -X -qAt -d "$db" -c "SELECT 'rows ' || COUNT(*) || ', highest id ' || MAX(id) FROM event_log" | sed 's/^/  /'
done

[ "$LINES" = 0 ] && exit 0
run() { # label, pushwise args...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$BIN" "$@" > "$WORK/out"
  read -r secs kb < "$WORK/time"
  printf '  %-40s %8.2f s %8.0f MiB peak RSS\n' "$label:" "$secs" "$(python3 -c "print($kb/1024)")"
}
python3 bench/gensite.py "$WORK/site" 3000 >/dev/null
target/release/genlog --preset kind --site "$WORK/site" --lines "$LINES" --seed 1 --start-ms 1767225600000 > "$WORK/a.log"
target/release/genlog --preset kind --site "$WORK/site" --lines 100000 --seed 2 --start-ms $((1767225600000 + 40 * 86400000)) > "$WORK/a-new.log"
H=(--host example.com --host www.example.com)
for backend in sqlite postgres; do
  echo "== $backend: $LINES imported lines, first pass, 100k newer lines, next pass"
  if [ "$backend" = sqlite ]; then db="$WORK/a.db"; else db=$(fresh_pg scale); fi
  run "import $LINES lines" --db "$db" import "${H[@]}" "$WORK/a.log"
  run "first pass" --db "$db" analyze --once --json
  run "import 100k newer lines" --db "$db" import "${H[@]}" "$WORK/a-new.log"
  run "next pass" --db "$db" analyze --once --json
done
