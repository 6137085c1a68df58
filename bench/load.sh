#!/usr/bin/env bash
# Load test of the lookup API against the bare server (see BENCHMARKS.md).
#
#   bench/load.sh                   # 100,000 and 1,000,000 accounts on PostgreSQL
#   ACCOUNTS="100000" bench/load.sh # other sizes
#   ONLY_HEALTH=1 ACCOUNTS=100000 SKIP_SEED=1 bench/load.sh   # the proxy health case alone
#
# For each size: seeds the accounts through the store (`multiprovider seed`), starts the
# release binary with its default settings (log level info) and measures start-to-ready and
# resident memory. With every size's server up, runs wrk (keep-alive, 2 threads, 64
# connections) against /health/live, the voice route and nginx serving the bytes of a voice
# answer as a static file, alternately, each size in turn (ROUNDS rounds); then per size the SMS route, the voice route at 8 connections, and on the
# largest admin upserts with 16 connections; on the largest, voice lookups while outcome
# reports arrive (proxy health). Prints the tables, with the server's CPU time per request
# of each run and, for lookups, the server-side latency percentiles read from its histogram
# (`multiprovider_lookup_duration_seconds`, before and after the run). Needs PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust auth); wrk and nginx are installed from Debian if
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${ACCOUNTS:-"100000 1000000"}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
WRITERS=${WRITERS:-16}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18080}
ADMIN_SID=ACae6e420f425248d6a26948c17a9e2acf
ADMIN_TOKEN=bench-admin-token
ENGINE_TOKEN=bench-engine-token
BIN=target/release/multiprovider
OUT=$(mktemp -d)

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$([ $tool = nginx ] && echo nginx-light || echo $tool)" >/dev/null; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --locked --quiet

# wrk's report → "req/s p50_ms p99_ms non2xx"
parse() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errs = re.search(r"Socket errors: (.*)", text)
print(f"{rps:.0f} {pct.get('50', 0):.3f} {pct.get('99', 0):.3f} {int(bad.group(1)) if bad else 0}{'(socket errors)' if errs else ''}")
PY
}

declare -A SERVER PORT_OF READY RSS_READY SEEDED
NGINX_PID=""
trap 'kill "${SERVER[@]}" $NGINX_PID 2>/dev/null || true; rm -rf "$OUT"' EXIT

# A server's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/${SERVER[$1]}/stat"; }

# The server's lookup latency histogram (Prometheus text) → "p50_us p99_us" of what was
# observed between two scrapes: the upper bounds of the buckets holding those percentiles.
latency() { # kind before.txt after.txt
  python3 - "$@" <<'PY'
import re, sys
kind, before, after = sys.argv[1:]
def buckets(path):
    pat = re.compile(r'^multiprovider_lookup_duration_seconds_bucket\{kind="%s",le="([^"]+)"\} (\d+)' % kind, re.M)
    return {le: int(c) for le, c in pat.findall(open(path).read())}
b, a = buckets(before), buckets(after)
rows = sorted(((float("inf") if le == "+Inf" else float(le)), a[le] - b.get(le, 0)) for le in a)
total = rows[-1][1] if rows else 0
def pct(p):
    for le, count in rows:
        if total and count >= p * total:
            return "inf" if le == float("inf") else f"{le * 1e6:g}"
    return "-"
print(pct(0.5), pct(0.99))
PY
}

load() { # size name script [connections] → "req/s p50 p99 non2xx server_us_per_request server_p50_us server_p99_us"
  local n=$1 name=$2 script=$3 conns=${4:-$CONNECTIONS} before after requests kind="" url
  url="http://127.0.0.1:${PORT_OF[$n]}"
  case "$script" in voice.lua) kind=voice ;; sms.lua) kind=sms ;; esac
  [ -n "$kind" ] && curl -fs "$url/metrics" >"$OUT/$n-$name.before"
  before=$(cpu_ticks "$n")
  ACCOUNTS=$n wrk -t2 -c"$conns" -d"$DURATION" --latency -s "bench/$script" "$url" >"$OUT/$n-$name.txt"
  after=$(cpu_ticks "$n")
  local server="- -"
  if [ -n "$kind" ]; then
    sleep 2.5 # the exporter folds samples into buckets every 2 s
    curl -fs "$url/metrics" >"$OUT/$n-$name.after"
    server=$(latency "$kind" "$OUT/$n-$name.before" "$OUT/$n-$name.after")
  fi
  requests=$(grep -oP '\d+(?= requests in)' "$OUT/$n-$name.txt")
  echo "$(parse "$OUT/$n-$name.txt") $(python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) * 1e6 / $requests:.1f}')") $server"
}

# nginx serving one voice answer's bytes as a static file for every path, with the same
# request pool as the lookups → "req/s p50 p99 non2xx nginx_us_per_request - -"
static() { # name
  local before after requests
  before=$(nginx_ticks)
  ACCOUNTS=$largest wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/voice.lua \
    "http://127.0.0.1:$NGINX_PORT" >"$OUT/static-$1.txt"
  after=$(nginx_ticks)
  requests=$(grep -oP '\d+(?= requests in)' "$OUT/static-$1.txt")
  echo "$(parse "$OUT/static-$1.txt") $(python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) * 1e6 / $requests:.1f}')") - -"
}
# nginx's master and workers, user + system CPU time so far, in clock ticks.
nginx_ticks() {
  local total=0 pid
  for pid in $(pgrep -f "nginx.*$OUT/nginx.conf" || true) $(pgrep -P "$NGINX_PID" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

memory_mb() { awk -v key="$2:" '$1 == key {printf "%.0f", $2 / 1024}' "/proc/${SERVER[$1]}/status"; }

# Seed, then start one server per size, one after the other (so that each start is timed
# alone); they then stay up together, so that the sizes are measured in the same minutes.
port=$PORT
for n in $SIZES; do
  db="${BENCH_DB:-mp_bench}_$n"
  url="$PG/$db"
  if [ -z "${SKIP_SEED:-}" ]; then
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
    echo "== $n accounts: seeding" >&2
    seeded=$("$BIN" seed --accounts "$n" --database-url "$url")
    SEEDED[$n]=$seeded
    echo "   $seeded" >&2
  fi
  start=$(date +%s.%N)
  DATABASE_URL=$url MULTIPROVIDER_LISTEN=127.0.0.1:$port \
    MULTIPROVIDER_ADMIN_SID=$ADMIN_SID MULTIPROVIDER_ADMIN_TOKEN=$ADMIN_TOKEN \
    MULTIPROVIDER_ENGINE_TOKEN=$ENGINE_TOKEN "$BIN" serve >"$OUT/server-$n.log" 2>&1 &
  SERVER[$n]=$!
  PORT_OF[$n]=$port
  until curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do
    kill -0 "${SERVER[$n]}" 2>/dev/null || { cat "$OUT/server-$n.log" >&2; exit 1; }
    sleep 0.02
  done
  READY[$n]=$(python3 -c "import time; print(f'{time.time() - $start:.2f}')")
  RSS_READY[$n]=$(memory_mb "$n" VmRSS)
  echo "== $n accounts: ready after ${READY[$n]}s, RSS ${RSS_READY[$n]} MB" >&2
  port=$((port + 1))
done

largest=$(echo "$SIZES" | tr ' ' '\n' | tail -n 1)
smallest=$(echo "$SIZES" | tr ' ' '\n' | head -n 1)

# nginx on a loopback port, its document the voice answer of a seeded account for a +44
# number (the route and the catch-all fallback, as most of the lookups answer), served for
# every path; as many workers as cores, like the server's worker threads.
NGINX_PORT=$((PORT + 100))
mkdir -p "$OUT/www"
curl -fs -H "Authorization: Bearer $ENGINE_TOKEN" \
  "http://127.0.0.1:${PORT_OF[$smallest]}/v1/accounts/AC00000000000000000000000000000001/voice-route?to=%2B4412345678" \
  >"$OUT/www/answer.json"
cat >"$OUT/nginx.conf" <<CONF
worker_processes auto;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $OUT/www;
    default_type application/json;
    location / { try_files /answer.json =404; }
  }
}
CONF
# nginx's workers run as an unprivileged user: the document must be readable to them.
chmod a+rx "$OUT" "$OUT/www" && chmod a+r "$OUT/www/answer.json"
"$NGINX" -c "$OUT/nginx.conf" -e "$OUT/nginx-error.log" &
NGINX_PID=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$NGINX_PORT/x" >/dev/null 2>&1 && break
  sleep 0.05
done
cmp -s <(curl -fs "http://127.0.0.1:$NGINX_PORT/x") "$OUT/www/answer.json" ||
  { echo "nginx does not serve the answer (see $OUT/nginx-error.log)" >&2; cat "$OUT/nginx-error.log" >&2; exit 1; }
echo "== nginx on port $NGINX_PORT serving $(wc -c <"$OUT/www/answer.json") bytes" >&2

export ENGINE_TOKEN
declare -A PAIRS
STATICS=()
for n in $SIZES; do load "$n" warmup voice.lua >/dev/null; done
static warmup >/dev/null
[ -n "${ONLY_HEALTH:-}" ] && ROUNDS=0
for round in $(seq "$ROUNDS"); do
  for n in $SIZES; do
    live=$(load "$n" "live$round" live.lua);    echo "   $n live   $live" >&2
    voice=$(load "$n" "voice$round" voice.lua); echo "   $n voice  $voice" >&2
    PAIRS[$n]="${PAIRS[$n]:+${PAIRS[$n]};}$live,$voice"
  done
  stat=$(static "$round"); echo "   nginx static $stat" >&2
  STATICS+=("$stat")
done
kill "$NGINX_PID" 2>/dev/null || true

# Proxy health (docs/operations.md) on the largest size: voice lookups alone, then while outcome
# reports arrive at ~5,000/s (a second wrk: in batches of 50, then one report per request),
# alternately, HEALTH_ROUNDS rounds (default 3). The seeded accounts name 1,000 distinct
# proxies.
health_at=${HEALTH_ACCOUNTS:-$smallest}
# The report rate is set by connections × 1000 / (delay + latency) requests a second: many
# connections with long pauses keep it near 5,000 reports/s even when latency grows.
reports() { # size name batch connections delay_ms → wrk report of the reports run
  ACCOUNTS=$1 BATCH=$3 DELAY_MS=$5 POOL=$((65536 / $3 > 1024 ? 65536 / $3 : 1024)) \
    wrk -t1 -c"$4" -d"$DURATION" -s bench/outcomes.lua \
    "http://127.0.0.1:${PORT_OF[$1]}" >"$OUT/$1-reports-$2.txt"
}
report_rate() { # name batch → "reports/s non2xx"
  python3 - "$OUT/$health_at-reports-$1.txt" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rps * int(sys.argv[2]):.0f} {int(bad.group(1)) if bad else 0}")
PY
}
# What the reports cost the server alone (no lookups running): its CPU time per report.
report_cost() { # name batch connections delay_ms → "reports/s µs_per_report"
  local before after
  before=$(cpu_ticks "$health_at")
  reports "$health_at" "$1" "$2" "$3" "$4"
  after=$(cpu_ticks "$health_at")
  python3 - "$OUT/$health_at-reports-$1.txt" "$2" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
batch, before, after, tck = (int(x) for x in sys.argv[2:])
requests = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(f"{rps * batch:.0f} {(after - before) / tck * 1e6 / (requests * batch):.2f}")
PY
}
COST_BATCHED=$(report_cost costb 50 20 190); echo "   reports alone, batched: reports/s, server CPU µs/report: $COST_BATCHED" >&2
COST_SINGLE=$(report_cost costs 1 110 20); echo "   reports alone, single: reports/s, server CPU µs/report: $COST_SINGLE" >&2
HEALTH=()
for round in $(seq "${HEALTH_ROUNDS:-3}"); do
  quiet=$(load "$health_at" "hq$round" voice.lua); echo "   $health_at voice, no reports      $quiet" >&2
  reports "$health_at" "hb$round" 50 20 190 &
  batched=$(load "$health_at" "hb$round" voice.lua); wait $!
  batched_rate=$(report_rate "hb$round" 50)
  echo "   $health_at voice, batched reports $batched  (reports/s, non-2xx: $batched_rate)" >&2
  reports "$health_at" "hs$round" 1 110 20 &
  single=$(load "$health_at" "hs$round" voice.lua); wait $!
  single_rate=$(report_rate "hs$round" 1)
  echo "   $health_at voice, single reports  $single  (reports/s, non-2xx: $single_rate)" >&2
  HEALTH+=("$quiet|$batched|$batched_rate|$single|$single_rate")
done
down=$(curl -fs -H "Authorization: Bearer $ENGINE_TOKEN" "http://127.0.0.1:${PORT_OF[$health_at]}/v1/proxies?health=down&PageSize=1" |
  python3 -c "import json, sys; print(json.load(sys.stdin)['total'])")
proxies=$(curl -fs -H "Authorization: Bearer $ENGINE_TOKEN" "http://127.0.0.1:${PORT_OF[$health_at]}/v1/proxies?PageSize=1" |
  python3 -c "import json, sys; print(json.load(sys.stdin)['total'])")

ROWS=()
for n in $([ -z "${ONLY_HEALTH:-}" ] && echo "$SIZES"); do
  sms=$(load "$n" sms sms.lua); echo "   $n sms    $sms" >&2
  # Latency below saturation: with 64 connections on 2 shared cores, queueing alone puts
  # the median at 64 / throughput (Little's law).
  light=$(load "$n" light voice.lua 8); echo "   $n voice, 8 connections $light" >&2
  writes="-"
  if [ "$n" = "$largest" ]; then
    config=$(python3 -c "import urllib.parse, subprocess; print(urllib.parse.quote(subprocess.run(['$BIN', 'seed', '--print-sample', '7'], capture_output=True, text=True).stdout.strip(), safe=''))")
    export ADMIN_AUTH="Basic $(printf '%s:%s' "$ADMIN_SID" "$ADMIN_TOKEN" | base64 -w0)" BODY_TAIL="&ConfigurationData=$config"
    writes=$(load "$n" writes upsert.lua "$WRITERS"); echo "   $n writes $writes" >&2
  fi
  ROWS+=("$n|${PAIRS[$n]}|$sms|$light|${READY[$n]}|${RSS_READY[$n]}|$(memory_mb "$n" VmHWM)|$writes|${SEEDED[$n]:-}")
done
kill -TERM "${SERVER[@]}"; wait || true

python3 - "$health_at" "$proxies" "$down" "$COST_BATCHED" "$COST_SINGLE" "${HEALTH[@]}" <<'PY'
import sys
n, proxies, down, cost_b, cost_s = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5].split()
print()
print(f"Proxy health at {n:,} accounts ({proxies} distinct proxies, {down} down at the end).")
print(f"Reports alone: batches of 50 at {float(cost_b[0]):,.0f}/s cost the server {cost_b[1]} µs of CPU each;")
print(f"one per request at {float(cost_s[0]):,.0f}/s, {cost_s[1]} µs each.")
print()
print("| round | voice alone req/s (server CPU µs/req) | with batched reports: req/s (reports/s; CPU µs/req) | ratio | with single reports: req/s (reports/s; CPU µs/req) | ratio |")
print("|---:|---:|---:|---:|---:|---:|")
sums = [0.0, 0.0, 0.0]
for i, row in enumerate(sys.argv[6:], 1):
    quiet, batched, brate, single, srate = row.split("|")
    q, b, s = (float(x.split()[0]) for x in (quiet, batched, single))
    cpu = [x.split()[4] for x in (quiet, batched, single)]
    sums = [sums[0] + q, sums[1] + b, sums[2] + s]
    print(f"| {i} | {q:,.0f} ({cpu[0]}) | {b:,.0f} ({float(brate.split()[0]):,.0f}; {cpu[1]}) | {b / q:.0%} | {s:,.0f} ({float(srate.split()[0]):,.0f}; {cpu[2]}) | {s / q:.0%} |")
print(f"| **all** | {sums[0]:,.0f} | {sums[1]:,.0f} | **{sums[1] / sums[0]:.0%}** | {sums[2]:,.0f} | **{sums[2] / sums[0]:.0%}** |")
PY

[ -n "${ONLY_HEALTH:-}" ] || python3 - "$(IFS=';'; echo "${STATICS[*]}")" "${ROWS[@]}" <<'PY'
import sys
statics = [s for s in sys.argv[1].split(";") if s]
static_total = sum(float(s.split()[0]) for s in statics)
print()
print("| accounts | route | req/s | p50 ms | p99 ms | non-2xx | server CPU µs/req | server p50 µs | server p99 µs | lookup/live | lookup/static |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for i, r in enumerate(statics, 1):
    rps, p50, p99, bad, cpu = r.split()[:5]
    print(f"| | nginx static ({i}) | {float(rps):,.0f} | {p50} | {p99} | {bad} | {cpu} (nginx) | | | | |")
extra, voice_means = [], []
for row in sys.argv[2:]:
    n, pairs, sms, light, ready, rss, hwm, writes, seeded = row.split("|")
    pairs = [p.split(",") for p in pairs.split(";")]
    runs = []
    for i, (live, voice) in enumerate(pairs, 1):
        runs += [(f"live ({i})", live, None, None), (f"voice-route ({i})", voice, live, statics[i - 1] if i <= len(statics) else None)]
    runs += [("sms-route", sms, None, None), ("voice-route, 8 connections", light, None, None)]
    live_total = sum(float(live.split()[0]) for live, _ in pairs)
    voice_total = sum(float(voice.split()[0]) for _, voice in pairs)
    voice_means.append((int(n), voice_total / len(pairs)))
    for name, r, live, static in runs:
        rps, p50, p99, bad, cpu, sp50, sp99 = r.split()[:7]
        ratio = f"{float(rps) / float(live.split()[0]):.0%}" if live else ""
        if name == "sms-route":
            ratio = f"{float(rps) / (live_total / len(pairs)):.0%} of mean live"
        vs = f"{float(rps) / float(static.split()[0]):.0%}" if static else ""
        print(f"| {int(n):,} | {name} | {float(rps):,.0f} | {p50} | {p99} | {bad} | {cpu} | {sp50} | {sp99} | {ratio} | {vs} |")
    vs_static = f"**{voice_total / static_total:.0%}**" if static_total else ""
    print(f"| {int(n):,} | **voice-route, all rounds** | {voice_total / len(pairs):,.0f} | | | | | | | **{voice_total / live_total:.0%}** | {vs_static} |")
    extra.append((n, ready, rss, hwm, writes, seeded))
print()
print("| accounts | seeding | start to ready s | RSS at ready MB | peak RSS MB | admin upserts/s (16 clients) | upsert p99 ms | non-2xx |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for n, ready, rss, hwm, writes, seeded in extra:
    w = writes.split() if writes != "-" else ["-", "-", "-", "-"]
    print(f"| {int(n):,} | {seeded or 'skipped'} | {ready} | {rss} | {hwm} | {w[0]} | {w[2]} | {w[3]} |")
if len(voice_means) > 1:
    (n0, v0), (n1, v1) = voice_means[0], voice_means[-1]
    print()
    print(f"Voice lookups at {n1:,} accounts: {v1 / v0 - 1:+.1%} against {n0:,} (mean of the rounds).")
PY
