#!/usr/bin/env bash
# Installs what building and testing dbmazz needs on a Debian machine (12 "bookworm" or
# later), as root or through sudo. Idempotent: it only installs what is missing and prints
# nothing when everything is present. It never starts a system service: the tests start
# their own throw-away PostgreSQL, MariaDB and Redis on random loopback ports.
#
#   build:  build-essential pkg-config libssl-dev zlib1g-dev curl ca-certificates
#           (protoc is vendored through the protoc-bin-vendored crate: no package needed)
#   tests:  postgresql (+ postgresql-<major>-wal2json, the parser's oracle),
#           mariadb-server (the StarRocks emulator's storage), redis-server (leases)
#   runner: cargo-nextest (from crates.io when missing)
set -euo pipefail

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install the Rust toolchain (rustup) first; rust-toolchain.toml pins the version"
command -v dpkg-query >/dev/null 2>&1 ||
    die "this script supports Debian and its derivatives (dpkg/apt) only"

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@" 2>/dev/null || sudo "$@"
    else
        die "need root to run: $* (run as root or install sudo)"
    fi
}

# PostgreSQL's major version: the installed server's, else the distribution's default.
pg_major() {
    local v
    v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1 || true)
    if [ -z "$v" ]; then
        v=$(apt-cache depends postgresql 2>/dev/null |
            sed -n 's/.*Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1 || true)
    fi
    echo "${v:-15}"
}

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
}

wanted=(build-essential pkg-config libssl-dev zlib1g-dev curl ca-certificates
    postgresql mariadb-server redis-server)
missing=()
for p in "${wanted[@]}"; do
    installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_update_once
    # Keep package scripts from starting the services they install (policy-rc.d 101 =
    # "action forbidden"), unless the machine already has a policy.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        trap 'as_root rm -f '"$policy" EXIT
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# wal2json must match the server's major version.
wal2json="postgresql-$(pg_major)-wal2json"
if ! installed "$wal2json"; then
    log "installing $wal2json"
    apt_update_once
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$wal2json" >/dev/null
fi

# PostgreSQL refuses to run as root; the tests then run it as the 'postgres' user,
# which the postgresql package creates.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    die "the 'postgres' system user is missing although postgresql is installed"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest from crates.io (a few minutes on 2 cores)"
    cargo install --locked --quiet cargo-nextest
fi
