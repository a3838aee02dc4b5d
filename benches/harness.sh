#!/usr/bin/env bash
# harness.sh - lacquer as a row of the shared side-by-side perf harness.
#
#   benches/harness.sh OUT.md [scenario ...]
#
# Builds the release binary, runs ../shared/perf/run.sh with lacquer added as the
# row "lacquer" (other settings pass through from the environment: SYSTEMS, RUNS,
# DURATION, ...; see ../shared/perf/README.md), then copies the resulting summary.md
# (markdown tables) to OUT.md. Run it on a quiet machine: it takes ~30 min with the
# default settings. With SYSTEMS naming "lacquer-sites", that row runs lacquer with
# $SITES [[site]]s (default 1000; see harness-row.sh), e.g. the cost of routing:
#
#   SYSTEMS="lacquer lacquer-sites" benches/harness.sh sites.md hit-small
set -euo pipefail

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
fi
out=$1
shift
# Resolve OUT.md against the caller's directory before moving to the crate root.
[[ "$out" == /* ]] || out="$PWD/$out"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
perf="$root/../shared/perf/run.sh"
[[ -x "$perf" || -f "$perf" ]] || { echo "harness.sh: $perf not found" >&2; exit 1; }

cd "$root"
cargo build --release --bin lacquer

# The harness resolves a relative binary path from the directory it is started in.
export PROXY_NAME=lacquer
target="${CARGO_TARGET_DIR:-target}"
export LACQUER_BIN="$target/release/lacquer"
export PROXY_CMD="bash benches/harness-row.sh {workdir} {host}:{port} {origin}"
export OUT_DIR="${OUT_DIR:-$(mktemp -d /tmp/lacquer-perf.XXXXXX)}"
bash "$perf" "$@"

summary="$OUT_DIR/summary.md"
[[ -s "$summary" ]] || { echo "harness.sh: no $summary produced" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
cp "$summary" "$out"
echo "harness.sh: summary copied to $out (raw results in $OUT_DIR)"
