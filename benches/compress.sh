#!/usr/bin/env bash
# compress.sh - compression at the edge (issue 13): a 50 KiB JSON document, cacheable
# and uncompressed at the origin, fetched with `Accept-Encoding: gzip, br` from each
# row: cache hits per second, CPU per hit of the system under test, and bytes on the
# wire per response.
#
#   benches/compress.sh [OUT.md]
#
# Rows ($SYSTEMS, default "direct lacquer nginx varnish"):
#   direct   the origin itself (nginx, no compression): the uncompressed reference
#   lacquer  target/release/lacquer in quick mode (its defaults)
#   nginx    proxy_cache + gzip on (benches/compress-nginx.conf): gzips every hit
#   varnish  built-in VCL + do_gzip for JSON (benches/compress-varnish.vcl): gzips once
# The shared harness (../shared/perf) does the measuring: its lib.sh starts and stops
# everything by PID, its helpers/measure.py runs wrk pinned to LOADGEN_CPU with the
# system on PROXY_CPU (origin on ORIGIN_CPU), waits for a quiet machine, and reads the
# CPU of the system's process tree; benches/compress-wrk.lua adds the header.
# Settings (environment): RUNS (3; rows alternate, order rotated per round, the table
# shows medians), DURATION (8 s), WARMUP (3 s), CONNS (64), ACCEPT_ENCODING
# ("gzip, br"), JSON_BYTES (51200), PORT_BASE (19310; uses PORT_BASE..+9),
# LOADGEN_CPU (0), PROXY_CPU (1), ORIGIN_CPU (1), VARNISH_MEM (256m), SKIP_BUILD=1,
# LACQUER_BIN (another lacquer binary to measure). More rows named lacquer-X run the
# binary in $BIN_lacquer_X, e.g. SYSTEMS="lacquer lacquer-new" BIN_lacquer_new=PATH.
set -euo pipefail

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
fi
out=${1:-}
[[ -z "$out" || "$out" == /* ]] || out="$PWD/$out"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
perf="$root/../shared/perf"
[[ -f "$perf/lib.sh" ]] || { echo "compress.sh: $perf/lib.sh not found" >&2; exit 1; }
# shellcheck source=/dev/null
source "$perf/lib.sh"

: "${SYSTEMS:=direct lacquer nginx varnish}"
: "${RUNS:=3}"
: "${DURATION:=8}"
: "${WARMUP:=3}"
: "${CONNS:=64}"
: "${ACCEPT_ENCODING:=gzip, br}"
: "${JSON_BYTES:=51200}"
: "${PORT_BASE:=19310}"
: "${LOADGEN_CPU:=0}"
: "${PROXY_CPU:=1}"
: "${ORIGIN_CPU:=1}"
: "${VARNISH_MEM:=256m}"
: "${QUIET_WAIT:=20}"
: "${QUIET_THRESHOLD:=15}"
export QUIET_WAIT QUIET_THRESHOLD
: "${OUT_DIR:=$(mktemp -d /tmp/lacquer-compress.XXXXXX)}"

cd "$root"
if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release --bin lacquer
fi
target="${CARGO_TARGET_DIR:-target}"
# LACQUER_BIN: measure another build (e.g. a branch's) instead of this tree's.
lacquer="${LACQUER_BIN:-$target/release/lacquer}"

mkdir -p "$OUT_DIR/raw"
RESULTS="$OUT_DIR/results.jsonl"
WIRE="$OUT_DIR/wire.jsonl"
RUN_DIR=$(mktemp -d /tmp/lacquer-compress-run.XXXXXX)
chmod 755 "$RUN_DIR"
: >"$RUN_DIR/pids"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cleanup() {
    stop_all_started
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    echo "date: $(date -Is)"
    echo "systems: $SYSTEMS; runs=$RUNS duration=${DURATION}s warmup=${WARMUP}s conns=$CONNS accept-encoding='$ACCEPT_ENCODING' json=${JSON_BYTES}B"
    echo "pinning: loadgen=$LOADGEN_CPU proxy=$PROXY_CPU origin=$ORIGIN_CPU (nproc=$(nproc))"
    echo "versions: $("$lacquer" --version 2>&1 | head -1) | $(nginx -v 2>&1) | $(varnishd -V 2>&1 | head -1) | $(wrk -v 2>&1 | head -1)"
    echo "kernel: $(uname -r); loadavg at start: $(cat /proc/loadavg)"
} | tee "$OUT_DIR/meta.txt" >&2

# A deterministic, realistic JSON document: a list of player records (ids, names,
# teams, scores, flags, tags, timestamps), about JSON_BYTES long. Real API payloads
# repeat keys and vocabulary, which is what makes them compress 5-10x.
mkdir -p "$RUN_DIR/docroot"
"$PY" - "$RUN_DIR/docroot/50k.json" "$JSON_BYTES" <<'PYEOF'
import json, random, sys
path, target = sys.argv[1], int(sys.argv[2])
rng = random.Random(13)
syl = ["an", "be", "co", "da", "el", "fi", "go", "ha", "is", "jo", "ka", "lu", "mi",
       "no", "or", "pa", "ri", "sa", "ta", "ul", "vi", "we", "xa", "yo", "za"]
teams = ["Harbour City", "North Vale", "Ironbridge", "Saint Albury", "Westmoor",
         "Redcliff United", "Eastfield Rovers", "Lakeside Athletic"]
positions = ["goalkeeper", "defender", "midfielder", "forward"]
def name():
    return "".join(rng.choice(syl) for _ in range(rng.randint(2, 4))).capitalize()
items, size = [], 2
while True:
    item = {
        "id": 100000 + len(items),
        "name": f"{name()} {name()}",
        "team": rng.choice(teams),
        "position": rng.choice(positions),
        "score": round(rng.uniform(0, 100), 2),
        "goals": rng.randint(0, 40),
        "active": rng.random() < 0.8,
        "tags": rng.sample(["captain", "injured", "loan", "academy", "veteran", "new"], rng.randint(0, 2)),
        "updated": f"2026-11-{rng.randint(1, 30):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
    }
    enc = len(json.dumps(item)) + 2
    if size + enc > target:
        break
    items.append(item)
    size += enc
doc = json.dumps({"players": items})
open(path, "w").write(doc)
print(f"generated {len(doc)} bytes, {len(items)} records", file=sys.stderr)
PYEOF
json_size=$(stat -c %s "$RUN_DIR/docroot/50k.json")

origin_port=$PORT_BASE
wd="$RUN_DIR/origin"
mkdir -p "$wd"
render benches/compress-origin-nginx.conf "$wd/nginx.conf" port="$origin_port" workdir="$wd" \
    docroot="$RUN_DIR/docroot"
start_bg "origin-nginx:$origin_port" "$ORIGIN_CPU" "$wd/stdout.log" nginx -e "$wd/error.log" -p "$wd" -c "$wd/nginx.conf"
ORIGIN_PID=$BG_PID
wait_http "$origin_port" 20 || die "origin did not start: $(cat "$wd"/*.log)"

declare -A PORT_OF PID_OF
slot=1
for s in $SYSTEMS; do
    case $s in direct) PORT_OF[$s]=$origin_port ;; *) PORT_OF[$s]=$((PORT_BASE + slot)); slot=$((slot + 1)) ;; esac
done

start_row() { # NAME ; sets PID_OF[NAME] (the origin's for direct)
    local name=$1 port=${PORT_OF[$1]} wd="$RUN_DIR/$1"
    mkdir -p "$wd"
    chmod 755 "$wd"
    case "$name" in
    direct) PID_OF[$name]=$ORIGIN_PID; return 0 ;;
    lacquer*)
        # A row lacquer-X runs the binary named by $BIN_lacquer_X (default: as lacquer),
        # so that two builds can be compared in one interleaved run.
        local var="BIN_${name//-/_}"
        start_bg "$name:$port" "$PROXY_CPU" "$wd/stdout.log" \
            "${!var:-$lacquer}" run --listen "127.0.0.1:$port" --origin "127.0.0.1:$origin_port" --admin off
        ;;
    nginx)
        render benches/compress-nginx.conf "$wd/nginx.conf" port="$port" origin_port="$origin_port" \
            workdir="$wd" nginx_workers="$(ncpus_in "$PROXY_CPU")"
        start_bg "nginx:$port" "$PROXY_CPU" "$wd/stdout.log" nginx -e "$wd/error.log" -p "$wd" -c "$wd/nginx.conf"
        ;;
    varnish)
        render benches/compress-varnish.vcl "$wd/default.vcl" origin_port="$origin_port"
        start_bg "varnish:$port" "$PROXY_CPU" "$wd/stdout.log" varnishd -F -n "$wd/vn" \
            -a "127.0.0.1:$port" -T none -f "$wd/default.vcl" -s "malloc,$VARNISH_MEM"
        ;;
    *) die "unknown row $name (rows: direct lacquer nginx varnish)" ;;
    esac
    PID_OF[$name]=$BG_PID
    wait_http "$port" 60 || die "$name did not answer on port $port: $(tail -5 "$wd"/*.log)"
}

url_of() { echo "http://127.0.0.1:${PORT_OF[$1]}/json/players"; }

# Bytes on the wire of one response (body and head as received, curl does not decode
# without --compressed), its Content-Encoding, and whether the body decodes to the
# origin's document.
wire_probe() { # NAME
    local s=$1 body="$RUN_DIR/$1.body" hdr="$RUN_DIR/$1.hdr" sizes
    sizes=$(curl -s -m 10 -o "$body" -D "$hdr" -w '%{size_download} %{size_header}' \
        -H "Accept-Encoding: $ACCEPT_ENCODING" "$(url_of "$s")")
    "$PY" - "$s" "$body" "$hdr" "$RUN_DIR/docroot/50k.json" $sizes >>"$WIRE" <<'PYEOF'
import gzip, json, sys, zlib
s, body, hdr, orig, size_body, size_head = sys.argv[1:7]
heads = open(hdr, "rb").read().decode("latin-1").split("\r\n\r\n")
fields = {}
for line in heads[-1 if heads[-1].strip() else -2].split("\r\n")[1:]:
    k, _, v = line.partition(":")
    fields[k.strip().lower()] = v.strip()
enc = fields.get("content-encoding", "identity")
data = open(body, "rb").read()
ok = None
try:
    if enc == "gzip":
        ok = gzip.decompress(data) == open(orig, "rb").read()
    elif enc == "deflate":
        ok = zlib.decompress(data) == open(orig, "rb").read()
    elif enc == "identity":
        ok = data == open(orig, "rb").read()
    else:
        try:
            import brotli  # not in the standard library: checked only if installed
            ok = brotli.decompress(data) == open(orig, "rb").read() if enc == "br" else None
        except ImportError:
            ok = None
except Exception:
    ok = False
print(json.dumps({"system": s, "size_download": int(size_body), "size_header": int(size_head),
                  "content_encoding": enc, "vary": fields.get("vary", ""),
                  "etag": fields.get("etag", ""), "body_ok": ok}))
PYEOF
}

rotate() {
    local n=$1; shift
    local arr=("$@") len=$# i
    for ((i = 0; i < len; i++)); do printf '%s ' "${arr[$(((i + n) % len))]}"; done
}

for s in $SYSTEMS; do
    start_row "$s"
    # Fill the cache (and, for Varnish, the gzipped copy), then record the wire sizes.
    curl -s -o /dev/null -m 10 -H "Accept-Encoding: $ACCEPT_ENCODING" "$(url_of "$s")"
    curl -s -o /dev/null -m 10 "$(url_of "$s")"
    wire_probe "$s"
    taskset -c "$LOADGEN_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" --timeout 10s -s benches/compress-wrk.lua \
        "$(url_of "$s")" >"$OUT_DIR/raw/warm-$s.txt" 2>&1 || true
done
export PERF_WRK_LUA="$LUA"
for ((r = 1; r <= RUNS; r++)); do
    # shellcheck disable=SC2046
    for s in $(rotate $((r - 1)) $SYSTEMS); do
        log "compress run $r/$RUNS: $s c=$CONNS"
        "$PY" "$HELPERS/measure.py" wrk --scenario compress --case "json50k-c$CONNS" --system "$s" \
            --run "$r" --out "$RESULTS" --port "${PORT_OF[$s]}" --conns "$CONNS" \
            --duration "$DURATION" --path /json/players --lua benches/compress-wrk.lua \
            --env "PERF_WRK_LUA=$LUA" --env "WRK_ACCEPT_ENCODING=$ACCEPT_ENCODING" \
            --sys-pid "${PID_OF[$s]}" --origin-pid "$([[ $s == direct ]] && echo 0 || echo "$ORIGIN_PID")" \
            --origin-status-port "$origin_port" --loadgen-cpu "$LOADGEN_CPU" \
            --raw "$OUT_DIR/raw/$s-$r.txt" >/dev/null || log "measurement failed: $s run $r"
    done
done

[[ -s "$RESULTS" ]] || die "no results"
"$PY" - "$RESULTS" "$WIRE" "$SYSTEMS" "$json_size" "$ACCEPT_ENCODING" >"$OUT_DIR/summary.md" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
wire = {w["system"]: w for w in (json.loads(l) for l in open(sys.argv[2]) if l.strip())}
order, size, ae = sys.argv[3].split(), int(sys.argv[4]), sys.argv[5]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, nd=1):
    return "–" if x is None else f"{x:,.{nd}f}"
r0 = rows[0]
print(f"Compression: {size:,} B JSON (application/json, max-age=3600, uncompressed at the origin), "
      f"`Accept-Encoding: {ae}`, wrk -t1 -c{r0['conns']}, {r0['wall_s']:.0f} s per run, "
      f"{len(rows) // max(1, len(order))} run(s) per row (medians). "
      "CPU µs/hit: CPU of the system's process tree per response (for direct: the origin's).\n")
print("| system | requests/s | CPU µs/hit | sys CPU % | wrk CPU % | p99 (ms) | Content-Encoding "
      "| body B/response | head B/response | wire B/response (wrk) | origin reqs/run | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for s in order:
    rs = [r for r in rows if r["system"] == s and "error" not in r]
    if not rs:
        continue
    w = wire.get(s, {})
    enc = w.get("content_encoding", "?")
    if w.get("body_ok") is False:
        enc += " (body WRONG)"
    wrk_b = med(r["bytes"] / r["requests"] for r in rs if r.get("requests"))
    orq = med(r.get("origin_reqs") for r in rs) if s != "direct" else None
    print(f"| {s} | {fmt(med(r['rps'] for r in rs), 0)} | {fmt(med(r['sys_cpu_us_per_req'] for r in rs))} "
          f"| {fmt(med(r['sys_cpu_pct'] for r in rs), 0)} | {fmt(med(r['loadgen_cpu_pct'] for r in rs), 0)} "
          f"| {fmt(med(r['lat_p99_us'] for r in rs) / 1000, 2)} | {enc} "
          f"| {w.get('size_download', 0):,} | {w.get('size_header', 0):,} | {fmt(wrk_b, 0)} "
          f"| {fmt(orq, 0)} | {sum(r['errors'] + r['non2xx'] for r in rs)} |")
if sum(1 for s in order if s.startswith("lacquer")):
    print("\norigin reqs/run: all rows run at once, so each lacquer row's health probe "
          "(GET / every 5 s) is counted in every row's runs.")
bad = [r for r in rows if "error" in r or r.get("contaminated")]
if bad:
    print(f"\n{len(bad)} run(s) failed or ran on a busy machine (other CPU above the limit).")
PYEOF
cat "$OUT_DIR/summary.md"
[[ -z "$out" ]] || { mkdir -p "$(dirname "$out")"; cp "$OUT_DIR/summary.md" "$out"; }
log "results: $OUT_DIR (results.jsonl, wire.jsonl, summary.md, raw/)"
