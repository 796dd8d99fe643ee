#!/usr/bin/env bash
# Policy host benchmark: `mtasts serve` (one process) answering GET /.well-known/mta-sts.txt
# for 100,000 hosted domains, a random Host: mta-sts.<domain> per request, against the
# anchor of the same run: nginx serving the same policy as a static file.
#
# Prints requests/s of both and the ratio, and the RSS of mtasts (from /proc) with 0 and with
# 100,000 domains, hence the memory each hosted domain costs. Both servers get the same wrk
# client and Lua script; where there are two or more CPUs the server runs on CPU 0 and wrk
# on CPU 1 (taskset), so they do not compete. A sample answer of each is checked first
# (200, text/plain, the exact policy; 404 for a name not hosted) and wrk must report no
# errors and no non-2xx answers, so a broken server cannot look fast.
#
# The two servers are loaded in turns, ROUNDS times each, and the medians compared, so that
# a noisy neighbour on the machine weighs on both alike.
#
# Settings (environment): DOMAINS (100000), DURATION (4s per round), ROUNDS (5),
# CONNECTIONS (64), THREADS (1), NGINX_WORKERS (1: one process, like mtasts),
# PYTHON (.venv/bin/python).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-$ROOT/.venv/bin/python}
DOMAINS=${DOMAINS:-100000}
DURATION=${DURATION:-4s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-1}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
POLICY_PATH=/.well-known/mta-sts.txt

die() { echo "policy_host: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is missing (scripts/system-deps.sh)"
[ -x "$NGINX" ] || die "nginx is missing (scripts/system-deps.sh)"
command -v curl >/dev/null || die "curl is missing"
[ -x "$PY" ] || die "no Python at $PY (make bench-policy-host sets up .venv)"

SERVER_CPU=() CLIENT_CPU=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  SERVER_CPU=(taskset -c 0) CLIENT_CPU=(taskset -c 1)
fi

TMP=$(mktemp -d)
chmod 755 "$TMP" # nginx workers run as nobody when started as root
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { "$PY" -c 'from tests.lab.ports import free_port; print(free_port())'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

wait_http() { # URL PID
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || return 1
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  return 1
}

MTASTS_PID=
# Only the policy host is measured: no monitoring or re-verification of the seeded domains
# (they do not exist), and any DNS lookup would go to a loopback port where nothing listens.
start_mtasts() { # DATA_DIR PORT
  MTASTS_MONITOR_INTERVAL=0 MTASTS_VERIFY_INTERVAL=86400 \
    "${SERVER_CPU[@]}" "$PY" -m mtasts serve --data-dir "$1" --listen "127.0.0.1:$2" \
    --zone sts.bench.example --nameserver 127.0.0.1:9 >"$1/serve.log" 2>&1 &
  MTASTS_PID=$!
  PIDS+=("$MTASTS_PID")
  wait_http "http://127.0.0.1:$2/healthz" "$MTASTS_PID" || {
    cat "$1/serve.log" >&2
    die "mtasts serve did not start"
  }
}
stop_mtasts() {
  kill "$MTASTS_PID"
  wait "$MTASTS_PID" 2>/dev/null || true
}

check_policy() { # NAME URL HOST EXPECTED_FILE
  local headers="$TMP/headers" body="$TMP/body" status
  status=$(curl -s -o "$body" -D "$headers" -w '%{http_code}' -H "Host: $3" "$2")
  [ "$status" = 200 ] || die "$1: HTTP $status for Host: $3"
  grep -qi '^content-type: text/plain' "$headers" || die "$1: not text/plain: $(cat "$headers")"
  cmp -s "$body" "$4" || die "$1: wrong policy for Host: $3: $(od -c "$body" | head -5)"
}

warm_up() { # URL
  "${CLIENT_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s bench/policy_host.lua "$1" \
    -- "$TMP/hosts" >/dev/null
}

run_wrk() { # NAME ROUND URL -> requests/s on stdout
  local out="$TMP/wrk-$1-$2.txt"
  "${CLIENT_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s bench/policy_host.lua "$3" -- "$TMP/hosts" >"$out"
  if grep -q -e 'Non-2xx' -e 'Socket errors' "$out"; then
    cat "$out" >&2
    die "$1: errors under load"
  fi
  awk '/^Requests\/sec:/ {print $2}' "$out"
}

# --- mtasts with no domains: the baseline RSS -------------------------------------------
mkdir -p "$TMP/empty"
PORT=$(free_port)
start_mtasts "$TMP/empty" "$PORT"
sleep 1
RSS_EMPTY=$(rss_kib "$MTASTS_PID")
stop_mtasts

# --- mtasts with DOMAINS domains -----------------------------------------------------------
mkdir -p "$TMP/full"
"$PY" bench/policy_host_seed.py "$TMP/full" "$DOMAINS" "$TMP/hosts" "$TMP/policy.txt"
PORT=$(free_port)
STARTED=$(date +%s%N)
start_mtasts "$TMP/full" "$PORT"
START_MS=$((($(date +%s%N) - STARTED) / 1000000))
MTASTS_URL="http://127.0.0.1:$PORT$POLICY_PATH"
SERVED=$(curl -s "http://127.0.0.1:$PORT/healthz" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["domains_served"])')
[ "$SERVED" = "$DOMAINS" ] || die "mtasts serves $SERVED domains, not $DOMAINS"
sleep 1
RSS_FULL=$(rss_kib "$MTASTS_PID")

# the seeded policy of the first domain, and of a random one (mx names differ per domain)
check_policy mtasts "$MTASTS_URL" "mta-sts.$(head -1 "$TMP/hosts")" "$TMP/policy.txt"
SAMPLE=$(shuf -n 1 "$TMP/hosts")
FIRST=$(head -1 "$TMP/hosts")
sed "s/$FIRST/$SAMPLE/g" "$TMP/policy.txt" >"$TMP/sample.txt"
check_policy mtasts "$MTASTS_URL" "mta-sts.$SAMPLE" "$TMP/sample.txt"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: mta-sts.not-hosted.example" "$MTASTS_URL")
[ "$STATUS" = 404 ] || die "mtasts: HTTP $STATUS for a name not hosted (want 404)"

# --- nginx: the same policy as a static file --------------------------------------------
NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx/www/.well-known" "$TMP/nginx/temp"
cp "$TMP/policy.txt" "$TMP/nginx/www/.well-known/mta-sts.txt"
chmod -R a+rX "$TMP/nginx/www"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    client_body_temp_path $TMP/nginx/temp;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = $POLICY_PATH {
            root $TMP/nginx/www;
            types { }
            default_type "text/plain; charset=utf-8";
            add_header Cache-Control no-cache;
        }
    }
}
EOF
"${SERVER_CPU[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NGINX_URL="http://127.0.0.1:$NGINX_PORT$POLICY_PATH"
wait_http "$NGINX_URL" "$NGINX_PID" || die "nginx did not start: $(cat "$TMP/nginx/error.log")"
check_policy nginx "$NGINX_URL" "mta-sts.$FIRST" "$TMP/policy.txt"

# --- load: the two servers in turns, so that a noisy neighbour hits both alike ---------
warm_up "$MTASTS_URL"
warm_up "$NGINX_URL"
MTASTS_RPS=() NGINX_RPS=()
for round in $(seq "$ROUNDS"); do
  MTASTS_RPS+=("$(run_wrk mtasts "$round" "$MTASTS_URL")")
  NGINX_RPS+=("$(run_wrk nginx "$round" "$NGINX_URL")")
done
RSS_LOADED=$(rss_kib "$MTASTS_PID")
P50_MTASTS=$(sed -n 's/^  *50% *//p' "$TMP/wrk-mtasts-$ROUNDS.txt")
P50_NGINX=$(sed -n 's/^  *50% *//p' "$TMP/wrk-nginx-$ROUNDS.txt")

"$PY" - "$DOMAINS" "$RSS_EMPTY" "$RSS_FULL" "$RSS_LOADED" "$START_MS" "$P50_MTASTS" \
  "$P50_NGINX" "${MTASTS_RPS[*]}" "${NGINX_RPS[*]}" <<EOF
import statistics
import sys
n, empty, full, loaded, start = (float(v) for v in sys.argv[1:6])
p50_ours, p50_anchor = sys.argv[6:8]
ours_all, anchor_all = ([float(v) for v in arg.split()] for arg in sys.argv[8:10])
ours, anchor = statistics.median(ours_all), statistics.median(anchor_all)
n = int(n)
print(f"policy host, {n} hosted domains, a random Host: mta-sts.<domain> per request")
print(f"wrk -t$THREADS -c$CONNECTIONS -d$DURATION x $ROUNDS rounds in turns (median; p50 latency of"
      " the last round); " + ("wrk and servers on separate CPUs" if "${CLIENT_CPU[*]}" else
      "one CPU shared"))
runs = lambda xs: ", ".join(f"{x:.0f}" for x in xs)
print(f"mtasts serve (1 process)        {ours:10.0f} req/s   p50 {p50_ours}  ({runs(ours_all)})")
print(f"nginx, static file ($NGINX_WORKERS worker)    {anchor:10.0f} req/s   p50 {p50_anchor}"
      f"  ({runs(anchor_all)})")
print(f"ratio mtasts/nginx              {ours / anchor:10.2f}x   (goal >= 0.3x)")
print(f"mtasts RSS, 0 domains           {empty / 1024:10.1f} MiB")
print(f"mtasts RSS, {n} domains    {full / 1024:10.1f} MiB after start ({int(start) / 1000:.1f} s),"
      f" {loaded / 1024:.1f} MiB after the load")
print(f"memory per hosted domain        {(full - empty) * 1024 / n:10.0f} bytes   (goal <= ~1 KiB)")
EOF
