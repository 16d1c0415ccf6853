#!/usr/bin/env bash
# Installs, from Debian's packages, what edgesync needs to build and test.
# Safe to run again: it installs only what is missing. Run as root (or with
# sudo available).
set -euo pipefail

packages=(
	build-essential cmake pkg-config git python3
	liburing-dev         # store: io_uring reads of the Vamana index
	libsqlite3-dev       # manifest
	libnng-dev           # local API and sync transport (nng, with mbedTLS)
	libcbor-dev          # CBOR messages
	libinih-dev          # the agent's INI configuration
	python3-cbor2        # the Python client example, run by the tests
	libcmocka-dev        # tests
	clang libclang-rt-14-dev  # the libFuzzer targets
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "edgesync setup: installing ${missing[*]}"
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
		--no-install-recommends "${missing[@]}"
fi
