#!/usr/bin/env bash
# The `edgesync segment` commands as a user runs them, checked against the
# independent implementation in tests/tools/ndvs_ref.py, both ways.
# usage: segment_cli.sh EDGESYNC_BINARY SOURCE_DIR
set -u
es=$1
ref="/usr/bin/python3 $2/tests/tools/ndvs_ref.py"
dir=$(mktemp -d /tmp/es-test-cli-XXXXXX)
trap 'rm -rf "$dir"' EXIT
. "$2/tests/tools/cli_check.sh"

# usage
for c in "segment create" "segment verify" "segment info" "segment export" \
	"bench crc" "bench segment"; do
	expect 0 $es $c --help
	says "usage: edgesync $c"
done
expect 0 $es --help
expect 0 $es --version
expect 64 $es
expect 64 $es nosuch
expect 64 $es segment
expect 64 $es segment create --from x
expect 64 $es segment verify
expect 64 $es segment verify a b
expect 64 $es segment create --bogus
expect 64 $es segment create --from a --out b --first-id -1
says "not a whole number"

# round trips through edgesync, checked by the reference: pad 4 and pad 0
for shape in "3 5" "128 300" "1 1"; do
	set -- $shape
	f="$dir/v$1x$2.fvecs"
	$ref fvecs "$f" --dim "$1" --count "$2" --seed "$2"
	expect 0 $es segment create --from "$f" --out "$dir/s.ndvs" \
		--first-id 1000
	says "$2 vectors of dim $1"
	expect 0 $ref check "$dir/s.ndvs" --fvecs "$f" --first-id 1000
	expect 0 $es segment verify "$dir/s.ndvs"
	expect 0 $es segment verify --pread "$dir/s.ndvs"
	expect 0 $es segment info --json "$dir/s.ndvs"
	says "\"dim\":$1,\"count\":$2,"
	expect 0 $es segment export "$dir/s.ndvs" --out "$dir/back.fvecs" \
		--ids "$dir/ids.txt"
	if cmp -s "$f" "$dir/back.fvecs"; then ok; else bad "export differs"; fi
	if [ "$(seq 1000 $((1000 + $2 - 1)))" = "$(cat "$dir/ids.txt")" ]; then
		ok; else bad "exported ids differ"; fi
done

# a segment from the independent writer opens, verifies, exports the same
f="$dir/v3x5.fvecs"
$ref write "$dir/ref.ndvs" --fvecs "$f" --first-id 7
expect 0 $es segment verify "$dir/ref.ndvs"
expect 0 $es segment info "$dir/ref.ndvs"
says "nodedb-ref 1"
expect 0 $es segment export "$dir/ref.ndvs" --out "$dir/back.fvecs"
if cmp -s "$f" "$dir/back.fvecs"; then ok; else bad "ref export differs"; fi
# the two writers agree on every byte but created_by
$es segment create --from "$f" --out "$dir/es.ndvs" --first-id 7 >/dev/null
if cmp -s <(head -c -44 "$dir/ref.ndvs") <(head -c -44 "$dir/es.ndvs"); then
	ok; else bad "writers disagree before the footer's created_by"; fi

# corruption is named
cp "$dir/es.ndvs" "$dir/bad.ndvs"
printf '\x7f' | dd of="$dir/bad.ndvs" bs=1 seek=40 conv=notrunc 2>/dev/null
expect 1 $es segment verify "$dir/bad.ndvs"
says "checksum mismatch"
expect 1 $es segment export "$dir/bad.ndvs" --out "$dir/x.fvecs"
if [ ! -e "$dir/x.fvecs" ]; then ok; else bad "export of a bad segment"; fi
# --json is JSON whatever the file's name (not UTF-8 here)
cp "$dir/es.ndvs" "$dir/bad$(printf '\xff').ndvs"
expect 0 $es segment info --json "$dir/bad$(printf '\xff').ndvs"
if /usr/bin/python3 -c 'import json,sys
json.loads(sys.stdin.buffer.read().decode("utf-8"))' <"$dir/out" 2>/dev/null
then ok; else bad "info --json is not JSON"; fi
# an output that is the input: refused, the segment untouched
cp "$dir/es.ndvs" "$dir/same.ndvs"
expect 64 $es segment export "$dir/same.ndvs" --out "$dir/same.ndvs"
says "other than the segment"
expect 64 $es segment export "$dir/same.ndvs" --out "$dir/x2.fvecs" \
	--ids "$dir/same.ndvs"
expect 64 $es index build "$dir/same.ndvs" --out "$dir/same.ndvs"
says "is the segment itself"
if cmp -s "$dir/es.ndvs" "$dir/same.ndvs"; then ok; else
	bad "the segment changed"; fi
expect 64 $es segment nosuch
says "edgesync: segment: unknown command 'nosuch'"
head -c 100 "$dir/es.ndvs" >"$dir/short.ndvs"
expect 1 $es segment verify "$dir/short.ndvs"
says "the file is 100 bytes"
expect 1 $es segment verify "$dir/nonexistent.ndvs"
says "No such file"

# bad .fvecs input: an error, no segment, no temporary file
head -c 50 "$dir/v128x300.fvecs" >"$dir/trunc.fvecs"
expect 1 $es segment create --from "$dir/trunc.fvecs" --out "$dir/t.ndvs"
says "truncated"
printf '\x00\x00\xc0\x7f' | dd of="$dir/v3x5.fvecs" bs=1 seek=36 \
	conv=notrunc 2>/dev/null
expect 1 $es segment create --from "$dir/v3x5.fvecs" --out "$dir/t.ndvs"
says "vector 2: vector holds a NaN"
if ls "$dir" | grep -q '^t\.ndvs'; then bad "leftover $(ls "$dir")"; else ok; fi

# the benchmarks run (figures printed, not judged)
expect 0 $es bench crc --mib 1 --json
says "portable"
expect 0 $es bench segment --mib 2 --dir "$dir"
says "verify pread, cold"

cli_check_done
