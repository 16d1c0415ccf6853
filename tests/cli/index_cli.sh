#!/usr/bin/env bash
# The `edgesync index` commands as a user runs them: build an index of a
# small segment, check it, read its header, search it with exact ground
# truth (computed here, by brute force), and refuse what is wrong with a
# message that names it.
# usage: index_cli.sh EDGESYNC_BINARY SOURCE_DIR
set -u
es=$1
ref="/usr/bin/python3 $2/tests/tools/ndvs_ref.py"
dir=$(mktemp -d /tmp/es-test-index-XXXXXX)
trap 'rm -rf "$dir"' EXIT
. "$2/tests/tools/cli_check.sh"
# recalls: "L recall" per line of the last `index search --json`
recalls() {
	/usr/bin/python3 -c 'import json, sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    print(j["L"], j["recall"])' "$dir/out"
}

# usage
for c in build search verify info; do
	expect 0 $es index $c --help
	says "usage: edgesync index $c"
done
expect 64 $es index
expect 64 $es index nosuch
expect 64 $es index build "$dir/s.ndvs"
says "\-\-out is needed"
expect 64 $es index build "$dir/s.ndvs" --out "$dir/x.vamana" --R 0
says "must be 1..1024"
expect 64 $es index build "$dir/s.ndvs" --out "$dir/x.vamana" --metric foo
says "l2, ip or cosine"
expect 64 $es index search "$dir/s.vamana" --queries "$dir/q.fvecs" --L 10,x
says "not a whole number"

# a segment of 2,000 vectors of dim 16, 50 queries, their exact top 10
$ref fvecs "$dir/b.fvecs" --dim 16 --count 2000 --seed 3
$ref fvecs "$dir/q.fvecs" --dim 16 --count 50 --seed 4
$es segment create --from "$dir/b.fvecs" --out "$dir/s.ndvs" >/dev/null
/usr/bin/python3 - "$dir" <<'EOF'
import struct, sys
d = sys.argv[1]
def vecs(path):
    b, i, out = open(path, "rb").read(), 0, []
    while i < len(b):
        n = struct.unpack_from("<i", b, i)[0]
        out.append(struct.unpack_from("<%df" % n, b, i + 4))
        i += 4 + 4 * n
    return out
base, queries = vecs(d + "/b.fvecs"), vecs(d + "/q.fvecs")
with open(d + "/gt.ivecs", "wb") as f:
    for q in queries:
        dist = [sum((a - b) ** 2 for a, b in zip(q, v)) for v in base]
        top = sorted(range(len(base)), key=lambda j: (dist[j], j))[:10]
        f.write(struct.pack("<i10i", 10, *top))
EOF

# build, check, read the header
expect 0 $es index build "$dir/s.ndvs" --out "$dir/s.vamana" --R 16 --L 32
says "2000 nodes of dim 16, R 16, L 32"
expect 0 $es index build "$dir/s.ndvs" --out "$dir/j.vamana" --R 16 --L 32 \
	--json
says '"nodes":2000,"dim":16,"R":16,"L":32'
expect 0 $es index verify "$dir/s.vamana"
says "ok, 2000 nodes of dim 16, R 16, l2"
expect 0 $es index verify "$dir/s.vamana" --segment "$dir/s.ndvs"
says "built from $dir/s.ndvs"
expect 0 $es index info "$dir/s.vamana" --json
says '"dim":16,"R":16,"build_L":32'
says '"nodes":2000'

# search: good recall; the same results whichever way the nodes are read
# or however many threads share the queries
expect 0 $es index search "$dir/s.vamana" --segment "$dir/s.ndvs" \
	--queries "$dir/q.fvecs" --gt "$dir/gt.ivecs" --L 10,40 --json
uring=$(recalls)
r40=$(echo "$uring" | awk '$1 == 40 {print $2}')
if awk -v r="$r40" 'BEGIN {exit !(r >= 0.95)}'; then ok; else
	bad "recall@10 at L 40 is $r40"; fi
for way in "--pread" "--threads 2" "--pread --threads 2"; do
	expect 0 $es index search "$dir/s.vamana" --segment "$dir/s.ndvs" \
		--queries "$dir/q.fvecs" --gt "$dir/gt.ivecs" --L 10,40 --json $way
	if [ "$(recalls)" = "$uring" ]; then ok; else
		bad "$way: recall $(recalls | tr '\n' ' ') against $uring"; fi
done
expect 0 $es index search "$dir/s.vamana" --segment "$dir/s.ndvs" \
	--queries "$dir/q.fvecs" --gt "$dir/gt.ivecs" --L 40 --memory --json
r40=$(recalls | awk '{print $2}')
if awk -v r="$r40" 'BEGIN {exit !(r >= 0.95)}'; then ok; else
	bad "--memory: recall@10 at L 40 is $r40"; fi
$ref fvecs "$dir/q8.fvecs" --dim 8 --count 5 --seed 1
expect 1 $es index search "$dir/s.vamana" --segment "$dir/s.ndvs" \
	--queries "$dir/q8.fvecs" --L 10
says "queries have dim 8, the index has dim 16"

# what is wrong is named
cp "$dir/s.vamana" "$dir/bad.vamana"
printf '\x5a' | dd of="$dir/bad.vamana" bs=1 seek=9000 conv=notrunc 2>/dev/null
expect 1 $es index verify "$dir/bad.vamana"
says "checksum mismatch"
$ref fvecs "$dir/o.fvecs" --dim 16 --count 2000 --seed 9
$es segment create --from "$dir/o.fvecs" --out "$dir/o.ndvs" >/dev/null
expect 1 $es index verify "$dir/s.vamana" --segment "$dir/o.ndvs"
says "built from a different segment"
# its own segment with a vector damaged: the segment is not whole
cp "$dir/s.ndvs" "$dir/d.ndvs"
printf '\x7f' | dd of="$dir/d.ndvs" bs=1 seek=100 conv=notrunc 2>/dev/null
expect 1 $es index verify "$dir/s.vamana" --segment "$dir/d.ndvs"
says "checksum mismatch"
head -c 5000 "$dir/s.vamana" >"$dir/short.vamana"
expect 1 $es index verify "$dir/short.vamana"
says "size does not match its header"
expect 1 $es index info "$dir/short.vamana"
expect 1 $es index verify "$dir/s.ndvs"
says "not a Vamana index"
expect 1 $es index verify "$dir/nonexistent.vamana"
says "No such file"
expect 1 $es index build "$dir/nonexistent.ndvs" --out "$dir/n.vamana"
says "No such file"
expect 1 $es index build "$dir/s.ndvs" --out "$dir/no/such/dir/x.vamana"
if compgen -G "$dir/n.vamana*" >/dev/null; then bad "leftover $(ls "$dir")"
else ok; fi

cli_check_done
