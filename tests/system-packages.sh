#!/usr/bin/env bash
# Installs the system programs the tests run for real, which pip cannot provide.
#
# Today that is Debian's redis-server: the A/B client's tests start a throwaway
# Redis on a loopback port (tests/redis_server.py) rather than mocking one, so
# what they check is how the client behaves against the server it meets in
# production. `make setup` calls this script; running it again changes nothing.
#
# It needs root for apt-get: it runs as root directly, through sudo when that
# exists, and otherwise stops and says what to install by hand.
set -euo pipefail

# Debian package name -> the command it provides and the tests look for on PATH.
declare -A PACKAGE_COMMANDS=([redis-server]=redis-server)

missing=()
for package in "${!PACKAGE_COMMANDS[@]}"; do
    if ! command -v "${PACKAGE_COMMANDS[$package]}" >/dev/null 2>&1; then
        missing+=("$package")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/system-packages.sh: no apt-get here; install ${missing[*]} with your" \
        "system's package manager so that ${missing[*]} is on PATH" >&2
    exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "tests/system-packages.sh: installing ${missing[*]} needs root and there is no" \
        "sudo; as root run: apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

# The package index is refreshed only when apt does not know a package yet (a fresh
# container ships with empty lists): an update is slow and needs the network.
needs_index=false
for package in "${missing[@]}"; do
    candidate=$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [[ -z $candidate || $candidate == "(none)" ]]; then
        needs_index=true
    fi
done
if $needs_index; then
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
fi

# No recommends: the tests start their own server, they need no service set up
# around it. Debian's package may start a system-wide instance where an init
# system runs; the tests do not use it (they pick a free port of their own).
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
