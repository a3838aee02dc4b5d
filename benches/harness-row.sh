#!/usr/bin/env bash
# harness-row.sh - start lacquer as one row of the shared perf harness (see harness.sh).
#
#   benches/harness-row.sh WORKDIR HOST:PORT ORIGIN
#
# The row named "lacquer" runs in quick mode. The row named "lacquer-sites" (its
# WORKDIR is sys-lacquer-sites-PORT) runs with $SITES [[site]]s (default 1000): exact
# hosts, wildcards, prefixes and regexes that the harness's requests do not match, and
# last the site that serves them, so every request is routed past all the others.
set -euo pipefail
workdir=$1 listen=$2 origin=$3
bin="${LACQUER_BIN:-target/release/lacquer}"
case "$workdir" in
*/sys-lacquer-sites-*) ;;
*) exec "$bin" run --listen "$listen" --origin "$origin" --admin off ;;
esac
sites=${SITES:-1000}
conf="$workdir/lacquer.toml"
{
    printf '[[listen]]\naddress = "%s"\n\n[admin]\nenabled = false\n\n[log]\naccess_log = false\n\n' "$listen"
    printf '[[origin]]\naddress = "%s"\n\n[[origin_group]]\nname = "app"\nservers = [{ address = "%s" }]\n\n' "$origin" "$origin"
    for ((i = 0; i < sites - 1; i++)); do
        printf '[[site]]\nname = "s%d"\norigin_group = "app"\n' "$i"
        case $((i % 4)) in
        0) printf 'hosts = ["h%d.example.com"]\n\n' "$i" ;;
        1) printf 'hosts = ["*.w%d.example.com"]\n\n' "$i" ;;
        2) printf 'hosts = ["h%d.example.com"]\npaths = ["/p%d/"]\n\n' "$i" "$i" ;;
        *) printf 'hosts = ["r%d.example.com"]\npath_regex = ["^/r%d/[0-9]+$"]\n\n' "$i" "$i" ;;
        esac
    done
    printf '[[site]]\nname = "bench"\nhosts = ["%s"]\norigin_group = "app"\n' "${listen%:*}"
} >"$conf"
exec "$bin" run --config "$conf"
