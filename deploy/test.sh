#!/usr/bin/env bash
# The test command: installs what is missing, builds everything with
# AddressSanitizer + UBSan and -Werror (and once more as a -Werror release
# build, whose optimizer sees other warnings), fuzzes the segment reader
# for a while (clang, libFuzzer), then runs every test with ctest.
# ES_FUZZ_SECONDS (default 60) sets how long the fuzzer runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh

jobs=$(nproc)
cmake -S . -B build/asan -DES_SANITIZE=ON -DES_WERROR=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build/asan -j"$jobs"

echo "== release build with -Werror"
cmake -S . -B build/werror -DES_WERROR=ON -DCMAKE_BUILD_TYPE=Release \
	-DES_BUILD_TESTS=OFF >/dev/null
if ! cmake --build build/werror -j"$jobs" >build/werror.log 2>&1; then
	cat build/werror.log
	exit 1
fi

echo "== fuzzing the NDVS readers for ${ES_FUZZ_SECONDS:-60} s"
CC=clang cmake -S . -B build/fuzz -DES_FUZZ=ON -DES_BUILD_TESTS=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if ! cmake --build build/fuzz -j"$jobs" --target fuzz_ndvs \
	>build/fuzz.log 2>&1; then
	cat build/fuzz.log
	exit 1
fi
corpus=build/fuzz/corpus-ndvs
mkdir -p "$corpus"
for shape in "3 1" "2 2" "1 3" "5 4"; do
	set -- $shape
	/usr/bin/python3 tests/tools/ndvs_ref.py fvecs build/fuzz/seed.fvecs \
		--dim "$1" --count "$2"
	build/asan/agent/edgesync segment create --from build/fuzz/seed.fvecs \
		--out "$corpus/seed-$1x$2.ndvs" >/dev/null
done
build/fuzz/tests/fuzz/fuzz_ndvs -max_total_time="${ES_FUZZ_SECONDS:-60}" \
	-seed=1 -print_final_stats=1 "$corpus" 2>&1 | tail -n 4

echo "== tests"
ctest --test-dir build/asan --output-on-failure -j"$jobs"
