#!/usr/bin/env bash
# `edgesync agent` and the client commands as a user runs them: a real
# agent on a socket in a temporary directory, configured by a file and
# command-line options; every client command, its output and exit code;
# -n on good and bad files; SIGHUP; SIGTERM; a second agent refused.
# usage: daemon_cli.sh EDGESYNC_BINARY SOURCE_DIR
set -u
es=$1
src=$2
dir=$(mktemp -d /tmp/es-test-agent-XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	# KEEP=1 keeps the directory (data, logs) to look at
	if [ -n "${KEEP:-}" ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
. "$src/tests/tools/cli_check.sh"
# logged PATTERN: the agent's log matches
logged() {
	if grep -q -- "$1" "$dir/agent.log"; then ok; else
		bad "agent log lacks '$1'"; cat "$dir/agent.log"; fi
}
# py SCRIPT ARGS...: a check in Python; it prints why when it fails
py() {
	if python3 -c "$@"; then ok; else bad "check failed: ${2:-}"; fi
}
# wait_for_socket PATH PID: until the socket exists or the agent is gone
wait_for_socket() {
	for _ in $(seq 600); do
		[ -S "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# ---- data like ../shared/data: clustered vectors, texmex .fvecs --------
dim=16
python3 - "$dir" "$dim" <<'EOF'
import random, struct, sys
d, dim = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
centres = [[rng.uniform(-10, 10) for _ in range(dim)] for _ in range(12)]
def point():
    c = rng.choice(centres)
    return [x + rng.gauss(0, 1) for x in c]
def write(path, rows):
    with open(path, "wb") as f:
        for r in rows:
            f.write(struct.pack("<i%df" % len(r), len(r), *r))
write(d + "/base.fvecs", [point() for _ in range(2500)])
write(d + "/queries.fvecs", [point() for _ in range(20)])
write(d + "/wrongdim.fvecs", [[1.0] * (dim + 1)])
write(d + "/three.fvecs", [[1, 2, 3], [4, 5, 6]])
EOF

# ---- configuration -----------------------------------------------------
sock="$dir/run/agent.sock"
cat >"$dir/agent.conf" <<EOF
# the test agent
[agent]
data-dir = $dir/data
log-level = info

[api]
socket = $dir/not-this.sock   ; the command line overrides it
workers = 4

[store]
seal-threshold = 100000
index-r = 16
index-l = 32
build-threads = 1
EOF
# the command line wins over the file
opts=(--socket "$sock" --seal-threshold 1000)

expect 0 $es agent --help
says "usage: edgesync agent"
says "\-\-seal-threshold N"
expect 0 $es agent -c "$dir/agent.conf" "${opts[@]}" -n
says "configuration OK"
expect 0 $es agent -c "$src/deploy/edgesync.conf" -n
says "configuration OK"
# every option of the table is in the example config
for key in $($es agent --help | sed -n 's/^  --\([a-z-]*\) .*/\1/p'); do
	if grep -Eq "^#? ?$key =" "$src/deploy/edgesync.conf"; then ok; else
		bad "deploy/edgesync.conf lacks $key"; fi
done
expect 64 $es agent --no-such-option
expect 64 $es agent -c "$dir/agent.conf" extra
expect 78 $es agent -c "$dir/none.conf" -n
says "none.conf: No such file"
expect 78 $es agent -c "$dir/agent.conf" --workers 0 -n
says "\-\-workers: 0 is out of range"
# -n refuses what a start would: CPUs not ours, TLS files that do not parse
expect 78 $es agent -c "$dir/agent.conf" --cpus 1023 -n
says "names CPUs this agent may not run on"
echo "not a certificate" >"$dir/junk.pem"
expect 78 $es agent -c "$dir/agent.conf" --role edge \
	--peer tls+tcp://127.0.0.1:9 --tls-cert "$dir/junk.pem" \
	--tls-key "$dir/junk.pem" --tls-ca "$dir/junk.pem" -n
says "cannot parse certificate"
# bad files: each names its file, line and key
badconf() { # EXPECTED-MESSAGE LINES...
	local want=$1; shift
	printf '%s\n' "$@" >"$dir/bad.conf"
	expect 78 $es agent -c "$dir/bad.conf" -n
	says "bad.conf:$want"
}
badconf "2: nosuch: unknown key" "[agent]" "nosuch = 1"
badconf "2: x: \[nope\] is not a section" "[nope]" "x = 1"
badconf "1: workers: outside any section" "workers = 4"
badconf "2: workers: belongs in \[api\]" "[agent]" "workers = 4"
badconf "3: workers: given twice" "[api]" "workers = 4" "workers = 5"
badconf "2: workers: 'many' is not a whole number" "[api]" "workers = many"
badconf "2: data-dir: 'rel' is not an absolute path" "[agent]" "data-dir = rel"
badconf "2: log-level: 'loud' is not" "[agent]" "log-level = loud"
badconf "2: socket: the path is longer than 103" "[api]" \
	"socket = /$(printf 'x%.0s' $(seq 120))"
badconf "2: max-message: '9Q' is not a whole number" "[api]" \
	"max-message = 9Q"
badconf "2: allow-users: no user named 'no_such_user_x'" "[api]" \
	"allow-users = root, no_such_user_x"
badconf "2: allow-groups: no group named 'no_such_group_x'" "[api]" \
	"allow-groups = no_such_group_x"
badconf "2: seal-threshold: 0 is out of range" "[store]" \
	"seal-threshold = 0"
badconf "2: index-alpha: '3' is not a number from 1 to 2" "[store]" \
	"index-alpha = 3"
badconf "3: index-l: 8 is less than index-r (16)" "[store]" \
	"index-r = 16" "index-l = 8"
badconf "2: index-r: 200 is more than index-l (100, its default)" \
	"[store]" "index-r = 200"
badconf "4: bandwidth: set on a cloud: only an edge" "[sync]" \
	"role = cloud" "listen = tcp://127.0.0.1:1" "bandwidth = 1M" \
	"token = 0123456789abcdef"
badconf "2: build-threads: 1000 is out of range" "[store]" \
	"build-threads = 1000"
badconf "2: cpus: '3-1': the range 3-1 runs backwards" "[agent]" "cpus = 3-1"
badconf "2: cpus: '0,,1' is not a list of CPUs" "[agent]" "cpus = 0,,1"
badconf "2: cpus: '4096': CPUs are numbered below" "[agent]" "cpus = 4096"
badconf "2: role: 'hub' is not edge, cloud or none" "[sync]" "role = hub"
badconf "2: role: an edge needs at least one peer" "[sync]" "role = edge"
badconf "3: peer: 'http://x:1' is not tcp://HOST:PORT" "[sync]" \
	"role = edge" "peer = http://x:1"
badconf "3: listen: 'tcp://\*:99999' is not tcp://HOST:PORT or tls+tcp://HOST:PORT: the port must be 1 to 65535" "[sync]" \
	"role = cloud" "listen = tcp://*:99999"
badconf "3: listen: tcp:// without TLS needs a token" "[sync]" \
	"role = cloud" "listen = tcp://*:7150"
badconf "4: token: 5 characters" "[sync]" "role = cloud" \
	"listen = tcp://*:7150" "token = short"
badconf "3: listen: tls+tcp:// needs tls-cert" "[sync]" "role = cloud" \
	"listen = tls+tcp://*:7150"
badconf "2: tls-ca: $dir/nope.pem: No such file" "[sync]" \
	"tls-ca = $dir/nope.pem"
badconf "2: bandwidth: '1X' is not a whole number" "[sync]" \
	"bandwidth = 1X"
badconf "2: peer: set, but role is none" "[sync]" "peer = tcp://a:1"
badconf "1: not a '\[section\]' or a 'key = value' line" "[api"
badconf "2: the line is longer than" "[agent]" \
	"data-dir = /$(printf 'x%.0s' $(seq 300))"
# sync options that are valid are accepted (tests/agent/sync_cli.sh runs
# agents that sync)
printf '%s\n' "[sync]" "role = edge" "peer = tcp://cloud:7150" \
	"peer = tcp://cloud2:7150" "token = 0123456789abcdef" \
	"bandwidth = 10M" "sync-interval = 1000" >"$dir/sync.conf"
expect 0 $es agent -c "$dir/sync.conf" -n
says "configuration OK"
badconf "2: allow-devices: a cloud admits devices" "[sync]" \
	"allow-devices = a,b" "role = edge" "peer = tcp://a:1" \
	"token = 0123456789abcdef"
badconf "2: allow-devices: device id 'x*\.\.\.' is 65 characters, at most 64" "[sync]" \
	"allow-devices = ok, $(printf 'x%.0s' $(seq 65))"
badconf "2: sync-interval: 5 is out of range" "[sync]" "sync-interval = 5"
badconf "2: idle-timeout: set on an edge: only a cloud closes idle" \
	"[sync]" "idle-timeout = 0" "role = edge" "peer = tcp://a:1" \
	"token = 0123456789abcdef"
badconf "2: idle-timeout: 86400001 is out of range" "[sync]" \
	"idle-timeout = 86400001"
printf '%s\n' "[sync]" "role = cloud" "listen = tcp://*:7150" \
	"token = 0123456789abcdef" "idle-timeout = 0" >"$dir/idle.conf"
expect 0 $es agent -c "$dir/idle.conf" -n
says "configuration OK"

# ---- pinned to CPUs ----------------------------------------------------
# A CPU the process may not use is refused at start; a good list pins every
# thread the agent starts (engine, API, sync, nng).
expect 78 $es agent --cpus 1023 --data-dir "$dir/pinned" \
	--socket "$dir/pinned.sock"
says "cpus: 1023 names CPUs this agent may not run on (it may use "
first_cpu=$(taskset -pc $$ | sed 's/.*: *//; s/[-,].*//')
$es agent --cpus "$first_cpu" --data-dir "$dir/pinned" \
	--socket "$dir/pinned.sock" 2>"$dir/pinned.log" &
pid=$!
if wait_for_socket "$dir/pinned.sock" "$pid"; then
	py 'import glob,sys
lists = set(l.split()[1] for f in glob.glob("/proc/%s/task/*/status" % sys.argv[1]) for l in open(f) if l.startswith("Cpus_allowed_list"))
assert lists == {sys.argv[2]}, lists' "$pid" "$first_cpu"
	if grep -q "running on CPUs $first_cpu" "$dir/pinned.log"; then ok; else
		bad "pinned agent log"; cat "$dir/pinned.log"; fi
else
	bad "the pinned agent did not start"; cat "$dir/pinned.log"
fi
kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null

# ---- the agent runs ----------------------------------------------------
$es agent -c "$dir/agent.conf" "${opts[@]}" 2>"$dir/agent.log" &
pid=$!
if wait_for_socket "$sock" "$pid"; then ok; else
	bad "no socket at $sock"; cat "$dir/agent.log"; exit 1; fi
[ -e "$dir/not-this.sock" ] && bad "the file's socket was used"
[ "$(stat -c %a "$sock")" = 660 ] && ok || bad "socket mode $(stat -c %a "$sock")"
[ "$(stat -c %a "$dir/run")" = 750 ] && ok || bad "socket dir mode $(stat -c %a "$dir/run")"
logged "info  edgesync .* starting"
logged "serving on $sock"
export EDGESYNC_SOCKET=/nonexistent/agent.sock
S=(-s "$sock")

# every command has --help
for c in "collection create" "collection list" "collection info" \
	"collection drop" import insert search delete get flush status \
	segments verify; do
	expect 0 $es $c --help
	says "usage: edgesync $c"
done
expect 64 $es collection
expect 64 $es collection nosuch
expect 64 $es insert "${S[@]}"
expect 64 $es search "${S[@]}" docs
expect 64 $es search "${S[@]}" docs --vector 1,2 --queries x
expect 64 $es search "${S[@]}" docs --vector 1,x
expect 64 $es search "${S[@]}" docs --vector 1,2 --k 0
expect 64 $es delete "${S[@]}" docs
expect 64 $es get "${S[@]}" docs -3

expect 0 $es status "${S[@]}"
says "collections *0"
# no [sync] role: peers and sync-now say so
expect 1 $es peers "${S[@]}"
says "does not sync.*(no_sync)"
expect 1 $es sync-now "${S[@]}"
says "no_sync"
# -s and --json before the command, and $EDGESYNC_SOCKET
expect 0 $es -s "$sock" --json status
py 'import json,sys; s=json.load(open(sys.argv[1])); assert s["collections"] == 0 and s["version"], s' "$dir/out"
EDGESYNC_SOCKET="$sock" expect 0 $es status
expect 1 $es status
says "/nonexistent/agent.sock"

# collections
expect 0 $es collection create "${S[@]}" docs --dim $dim --metric l2
says "collection docs created: dim $dim, metric l2, sync none"
expect 1 $es collection create "${S[@]}" docs --dim $dim
says "docs"
expect 0 $es collection create "${S[@]}" --json other --dim 3 \
	--metric ip --sync upload
py 'import json,sys; c=json.load(open(sys.argv[1])); assert (c["name"], c["dim"], c["metric"], c["sync"]) == ("other", 3, "ip", "upload"), c' "$dir/out"
expect 64 $es collection create "${S[@]}" x --dim 0
expect 64 $es collection create "${S[@]}" x --dim 4 --metric hamming
expect 64 $es collection create "${S[@]}" x --dim 4 --sync sideways
expect 1 $es collection create "${S[@]}" "Bad Name" --dim 4
expect 0 $es collection list "${S[@]}"
says "^docs  *$dim  *l2"
says "^other  *3  *ip  *upload"
expect 0 $es collection list "${S[@]}" --json
py 'import json,sys; l=json.load(open(sys.argv[1]))["collections"]; assert [c["name"] for c in l] == ["docs", "other"], l' "$dir/out"
expect 0 $es collection info "${S[@]}" docs
says "dim       $dim"
expect 1 $es collection info "${S[@]}" nosuch
says "nosuch"

# import: 2500 vectors, sealed every 1000 (the command line's threshold)
expect 0 $es import "${S[@]}" docs "$dir/base.fvecs" --batch 300
says "imported 2500 vectors into docs (ids 0 to 2499)"
expect 1 $es import "${S[@]}" docs "$dir/wrongdim.fvecs"
says "dim $((dim + 1)); collection docs has dim $dim"
expect 1 $es import "${S[@]}" docs "$dir/nofile.fvecs"
expect 0 $es import "${S[@]}" --json other "$dir/three.fvecs" \
	--first-id 7
py 'import json,sys; r=json.load(open(sys.argv[1])); assert r["imported"] == 2 and r["first_id"] == 7, r' "$dir/out"
expect 0 $es get "${S[@]}" other 8
[ "$(cat "$dir/out")" = "4,5,6" ] && ok || bad "get other 8: $(cat "$dir/out")"
# import .npy and CSV, chosen by content whatever the name; errors name
# the file and where it is wrong
python3 - "$dir" <<'EOF'
import struct, sys
d = sys.argv[1]
def npy(path, descr, rows, version=1):
    dim = len(rows[0])
    h = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }" % (
        descr, len(rows), dim)
    descr = descr[0] + {"f4": "f", "f8": "d"}[descr[1:]]
    pre = 10 if version == 1 else 12
    h += " " * (63 - (pre + len(h)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]))
        f.write(struct.pack("<H" if version == 1 else "<I", len(h)))
        f.write(h.encode())
        for r in rows:
            f.write(struct.pack(descr[0] + descr[1] * dim, *r))
npy(d + "/v.npy", "<f8", [[10, 11, 12], [13, 14, 15]], version=2)
npy(d + "/be.data", ">f4", [[1, 2, 3]])
with open(d + "/v.data", "w") as f:
    f.write("id,x,y,z\r\n20,1.5,2.5,3.5\r\n\r\n21,-1,0,1e3\r\n")
with open(d + "/bad.csv", "w") as f:
    f.write("1,2,3\n\n4,5,x6\n")
with open(d + "/pandas.csv", "w") as f:
    f.write(",0,1,2\n40,1,2,3\n41,4,5,6\n")
EOF
expect 0 $es import "${S[@]}" other "$dir/v.npy" --first-id 30
says "imported 2 vectors into other (ids 30 to 31)"
expect 0 $es get "${S[@]}" other 31
[ "$(cat "$dir/out")" = "13,14,15" ] && ok || bad "get other 31: $(cat "$dir/out")"
expect 0 $es import "${S[@]}" --json other "$dir/v.data" --id-column
py 'import json,sys; r=json.load(open(sys.argv[1])); assert r["imported"] == 2 and r["format"] == "csv" and r["first_id"] is None, r' "$dir/out"
expect 0 $es get "${S[@]}" other 21
[ "$(cat "$dir/out")" = "-1,0,1000" ] && ok || bad "get other 21: $(cat "$dir/out")"
expect 1 $es import "${S[@]}" other "$dir/v.data"
says "v.data has vectors of dim 4; collection other has dim 3"
says "\-\-id-column says so"
expect 1 $es import "${S[@]}" other "$dir/pandas.csv" --id-column
says "pandas.csv: line 1, column 1"
says "\-\-header skips it"
expect 0 $es import "${S[@]}" other "$dir/pandas.csv" --id-column --header
expect 0 $es get "${S[@]}" other 41
[ "$(cat "$dir/out")" = "4,5,6" ] && ok || bad "get other 41: $(cat "$dir/out")"
expect 64 $es import "${S[@]}" other "$dir/v.npy" --header
says "\-\-header: .*v.npy is not CSV"
expect 1 $es import "${S[@]}" other "$dir/bad.csv"
says "bad.csv: line 3, column 3: CSV value is empty or not a decimal number"
expect 1 $es import "${S[@]}" other "$dir/be.data"
says "be.data: .npy array is big-endian"
expect 1 $es import "${S[@]}" other "$dir/v.npy" --format csv
says "v.npy: line 1, column 1: CSV value"
expect 1 $es import "${S[@]}" other "$dir/v.data" --format npy
says "v.data: file does not start with the .npy magic"
expect 64 $es import "${S[@]}" other "$dir/v.npy" --id-column
says "only CSV files have an id column"
expect 64 $es import "${S[@]}" other "$dir/v.npy" --format npz
says "'npz' is not fvecs, npy or csv"
expect 0 $es collection info "${S[@]}" --json docs
py 'import json,sys; c=json.load(open(sys.argv[1])); assert c["vectors"] == 2500, c' "$dir/out"

# insert, get
expect 0 $es insert "${S[@]}" docs --id 100000 --vector "$(python3 -c "print(','.join(str(0.5 + i) for i in range($dim)))")"
says "inserted id 100000 into docs"
expect 0 $es get "${S[@]}" docs 100000
[ "$(cat "$dir/out")" = "$(python3 -c "print(','.join('%g' % (0.5 + i) for i in range($dim)))")" ] && ok || bad "get: $(cat "$dir/out")"
expect 0 $es get "${S[@]}" --json docs 100000
py 'import json,sys; g=json.load(open(sys.argv[1])); assert g["id"] == 100000 and g["vector"][3] == 3.5, g' "$dir/out"
expect 1 $es insert "${S[@]}" docs --id 1 --vector 1,2,3
says "dim"
expect 1 $es get "${S[@]}" docs 555555
expect 1 $es insert "${S[@]}" nosuch --id 1 --vector 1,2,3

# search: one vector (base row 5 finds itself), then a file of queries
row5=$(python3 - "$dir/base.fvecs" "$dim" <<'EOF'
import struct, sys
dim = int(sys.argv[2])
with open(sys.argv[1], "rb") as f:
    f.seek(5 * (4 + 4 * dim) + 4)
    print(",".join("%.9g" % x for x in struct.unpack("<%df" % dim, f.read(4 * dim))))
EOF
)
expect 0 $es search "${S[@]}" docs --vector "$row5" --k 5
says "RANK"
expect 0 $es search "${S[@]}" docs --vector "$row5" --k 5 --json
py 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ids"][0] == 5 and r["distances"][0] < 1e-3 and len(r["ids"]) == 5 == len(r["distances"]), r' "$dir/out"
expect 0 $es search "${S[@]}" docs --queries "$dir/queries.fvecs" --k 10 \
	--L 64 --json
cp "$dir/out" "$dir/results.jsonl"
# against exact search by brute force: recall@10 at least 0.9
py '
import json, struct, sys
d, dim = sys.argv[1], int(sys.argv[2])
def rows(p):
    b = open(p, "rb").read(); n = len(b) // (4 + 4 * dim)
    return [struct.unpack_from("<%df" % dim, b, i * (4 + 4 * dim) + 4) for i in range(n)]
base, qs = rows(d + "/base.fvecs"), rows(d + "/queries.fvecs")
base.append(tuple(0.5 + i for i in range(dim)))
ids = list(range(2500)) + [100000]
lines = [json.loads(l) for l in open(d + "/results.jsonl")]
assert len(lines) == len(qs), len(lines)
hit = 0
for i, (q, r) in enumerate(zip(qs, lines)):
    assert r["query"] == i and len(r["ids"]) == 10 == len(r["distances"]), r
    assert r["distances"] == sorted(r["distances"]), r
    dist = sorted((sum((a - b) ** 2 for a, b in zip(q, v)), k) for k, v in zip(ids, base))
    hit += len(set(r["ids"]) & {k for _, k in dist[:10]})
    assert abs(r["distances"][0] - dist[0][0]) < 1e-3 * max(1, dist[0][0]), (r, dist[0])
assert hit >= 0.9 * 10 * len(qs), hit
' "$dir" "$dim"
expect 0 $es search "${S[@]}" docs --queries "$dir/queries.fvecs" --k 3
[ "$(grep -c . "$dir/out")" = 61 ] && ok || bad "search table: $(grep -c . "$dir/out") lines"
expect 1 $es search "${S[@]}" docs --vector 1,2,3
expect 1 $es search "${S[@]}" docs --queries "$dir/nofile.fvecs"

# delete
expect 0 $es delete "${S[@]}" docs 5 6 99999999
says "deleted 3 ids from docs"
expect 1 $es get "${S[@]}" docs 5
expect 0 $es search "${S[@]}" docs --vector "$row5" --k 5 --json
py 'import json,sys; r=json.load(open(sys.argv[1])); assert 5 not in r["ids"] and 6 not in r["ids"], r' "$dir/out"

# flush, segments
expect 0 $es flush "${S[@]}" docs
says "docs flushed"
expect 0 $es collection info "${S[@]}" --json docs
py 'import json,sys; c=json.load(open(sys.argv[1])); assert c["growing"] == 0 and c["vectors"] == 2499, c' "$dir/out"
expect 0 $es segments "${S[@]}" docs
says "^ *ID  *VECTORS"
expect 0 $es segments "${S[@]}" docs --json
py 'import json,sys; s=json.load(open(sys.argv[1]))["segments"]; assert len(s) >= 3 and sum(g["count"] for g in s) >= 2501 and all(g["checksum"].startswith("0x") for g in s), s' "$dir/out"
expect 1 $es segments "${S[@]}" nosuch
expect 1 $es flush "${S[@]}" nosuch

# verify: the manifest and every file read whole; a flipped byte in a
# segment or an index is found and named, and the exit code says so
expect 0 $es verify "${S[@]}"
says "verified the manifest and [0-9]* segments (.*) of 2 collections: 0 problems"
# the first segment of docs, once its index is built (polled, bounded)
seg_id=
for _ in $(seq 600); do
	$es segments "${S[@]}" docs --json >"$dir/out" 2>"$dir/err"
	seg_id=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["segments"][0]; print(s["id"] if s["indexed"] else "")' "$dir/out")
	[ -n "$seg_id" ] && break
	sleep 0.1
done
[ -n "$seg_id" ] && ok || bad "the first segment of docs was never indexed"
expect 0 $es verify "${S[@]}" --json docs
py 'import json,sys; r=json.load(open(sys.argv[1])); assert r["manifest_ok"] and r["collections"] == 1 and r["segments"] >= 3 and r["problems"] == [], r' "$dir/out"
for ext in ndvs vamana; do
	f=$(ls "$dir"/data/collections/*/seg-$seg_id.$ext)
	cp "$f" "$dir/saved"
	printf 'Z' | dd of="$f" bs=1 seek=4200 conv=notrunc status=none
	expect 1 $es verify "${S[@]}" docs
	says "collection docs, segment $seg_id: $([ $ext = ndvs ] && echo segment || echo index) file: "
	says "1 problem$"
	expect 1 $es verify "${S[@]}" --json docs
	py 'import json,sys; r=json.load(open(sys.argv[1])); p=r["problems"]; assert r["complete"] and len(p) == 1 and p[0]["collection"] == "docs" and p[0]["segment"] == int(sys.argv[2]) and p[0]["message"].startswith(sys.argv[3]), r' "$dir/out" "$seg_id" "$([ $ext = ndvs ] && echo segment || echo index) file: "
	cp "$dir/saved" "$f"
done
expect 0 $es verify "${S[@]}" docs
# a name that is not a collection: said, the others still checked
expect 1 $es verify "${S[@]}" nosuch docs
says "collection nosuch: .*(not_found)"
says "not everything could be checked"
expect 1 $es verify "${S[@]}" --json nosuch docs
py 'import json,sys; r=json.load(open(sys.argv[1])); assert not r["complete"] and r["collections"] == 1 and r["segments"] >= 3 and r["problems"] == [] and r["errors"][0]["collection"] == "nosuch", r' "$dir/out"
expect 0 $es status "${S[@]}" --json
py 'import json,sys; s=json.load(open(sys.argv[1])); assert s["collections"] == 2 and s["vectors"] >= 2499 and s["inserts"] >= 2501, s' "$dir/out"

# a second agent on the same socket is refused, and the first serves on
mkdir -p "$dir/data2"
expect 1 $es agent -c "$dir/agent.conf" "${opts[@]}" --data-dir "$dir/data2"
says "another agent"
expect 0 $es status "${S[@]}"

# SIGHUP: the new log-level applies, the rest waits for a restart
sed -i 's/^log-level = info/log-level = debug/; s/^workers = 4/workers = 6/' \
	"$dir/agent.conf"
kill -HUP "$pid"
for _ in $(seq 300); do
	grep -q "reload done" "$dir/agent.log" && break
	sleep 0.1
done
logged "reload: log-level 'info' -> 'debug' applied"
logged "reload: workers changed ('4' -> '6') but takes effect only at restart"
logged "reload done"
echo "[broken" >>"$dir/agent.conf"
last=$(wc -l <"$dir/agent.conf")
kill -HUP "$pid"
for _ in $(seq 300); do
	grep -q "the running configuration stays" "$dir/agent.log" && break
	sleep 0.1
done
logged "agent.conf:$last: not a '\[section\]' or a 'key = value' line; the running configuration stays"
sed -i '$d' "$dir/agent.conf"
expect 0 $es status "${S[@]}"

# SIGTERM: drains, exits 0, removes the socket
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] && ok || bad "SIGTERM: exit $rc"
[ -e "$sock" ] && bad "the socket is still there" || ok
logged "SIGTERM from pid"
logged "info  stopped"
expect 1 $es status "${S[@]}"

# what was acknowledged is there after a restart; SIGINT stops it too;
# under systemd (Type=notify) it says READY=1 and STOPPING=1
mv "$dir/agent.log" "$dir/agent1.log"
python3 - "$dir/notify.sock" "$dir/notify.txt" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "a") as out:
    while True:
        m = s.recv(4096).decode()
        out.write(m.replace("\n", " ") + "\n")
        out.flush()
        if "STOPPING=1" in m:
            break
EOF
notify_pid=$!
for _ in $(seq 100); do [ -S "$dir/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET="$dir/notify.sock" $es agent -c "$dir/agent.conf" \
	"${opts[@]}" 2>"$dir/agent.log" &
pid=$!
if wait_for_socket "$sock" "$pid"; then ok; else
	bad "no socket after restart"; cat "$dir/agent.log"; exit 1; fi
expect 0 $es get "${S[@]}" docs 100000
expect 1 $es get "${S[@]}" docs 5
expect 0 $es collection info "${S[@]}" --json docs
py 'import json,sys; c=json.load(open(sys.argv[1])); assert c["vectors"] == 2499, c' "$dir/out"
expect 0 $es collection drop "${S[@]}" other
says "collection other dropped"
expect 0 $es collection drop "${S[@]}" --json docs
says '"dropped":"docs"'
expect 0 $es collection list "${S[@]}" --json
says '{"collections":\[\]}'
expect 1 $es collection drop "${S[@]}" docs
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] && ok || bad "SIGINT: exit $rc"
wait "$notify_pid"
grep -q "^READY=1" "$dir/notify.txt" && grep -q "^STOPPING=1" \
	"$dir/notify.txt" && ok || bad "sd_notify: $(cat "$dir/notify.txt")"
[ -e "$sock" ] && bad "the socket is still there after SIGINT" || ok
grep -q "ERROR: AddressSanitizer\|runtime error" "$dir/agent.log" &&
	bad "sanitizer report in the agent log" && cat "$dir/agent.log"

cli_check_done
