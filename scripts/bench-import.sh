#!/usr/bin/env bash
# Import benchmark: generates Merchant feeds of 10k and 100k rows and imports each into a fresh
# database, printing rows/s and peak RSS side by side. Constant memory shows as the same peak RSS
# for 10x the rows. Uses DATABASE_URL when set, else the embedded cluster in a temporary state dir.
# Usage: scripts/bench-import.sh [ROWS...]   (default: 10000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_cargo
ensure_postgres
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aisle/target}
cargo build --release --locked -q
bin="$CARGO_TARGET_DIR/release/aisle"

work=$(mktemp -d /tmp/aisle-bench.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)

printf '%-8s %10s %10s %10s %10s %12s %12s\n' rows inserted rejected seconds rows/s peak_rss_mb feed_mb
for n in "${sizes[@]}"; do
    feed="$work/feed-$n.tsv"
    python3 scripts/gen-merchant-feed.py "$n" "$feed"
    # A fresh database per size: its own state dir for the embedded cluster.
    export AISLE__DATABASE__STATE_DIR="$work/state-$n"
    mkdir -p "$AISLE__DATABASE__STATE_DIR"; chmod 755 "$AISLE__DATABASE__STATE_DIR"
    if [ -n "${DATABASE_URL:-}" ]; then
        echo "note: DATABASE_URL is set; rows already there count as updated/unchanged" >&2
    fi
    json=$("$bin" import merchant "$feed" --json --no-embed 2>/dev/null)
    python3 - "$n" "$json" "$feed" <<'PY'
import json, os, sys
n, r, feed = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
print(f"{n:<8} {r['inserted']:>10} {r['rejected']:>10} {r['seconds']:>10.1f} {r['rows']/r['seconds']:>10.0f} "
      f"{r['peak_rss_mb']:>12.1f} {os.path.getsize(feed)/2**20:>12.1f}")
PY
done
