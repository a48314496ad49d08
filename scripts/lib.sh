# Shared helpers for aisle's scripts (sourced, not run).

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Prints the directory holding the Postgres server binaries (pg_ctl, initdb), or nothing.
pg_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    done
}

# Installs the Postgres server from Debian/Ubuntu packages when its binaries are missing.
ensure_postgres() {
    if [ -n "$(pg_bindir)" ]; then return; fi
    echo "aisle: installing the PostgreSQL server binaries (apt-get install postgresql)" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
    if [ -z "$(pg_bindir)" ]; then
        echo "aisle: PostgreSQL server binaries still not found after installing" >&2
        exit 1
    fi
}

# Fails with a hint when there is no Rust toolchain.
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "aisle: cargo not found; install Rust from your package manager or rustup first" >&2
        exit 1
    fi
}

# Installs headless Chromium, its WebDriver and a CJK font for the browser tests when missing.
ensure_browser() {
    local missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || missing+=(fonts-wqy-microhei)
    if [ ${#missing[@]} -eq 0 ]; then return; fi
    echo "aisle: installing ${missing[*]} for the browser tests" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}
