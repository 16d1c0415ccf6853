#!/usr/bin/env bash
# Sync through a faulty link: a real edge and a real cloud agent (plain tcp
# with a token) talk through tests/tools/fault_proxy, which cuts
# connections in the middle of chunks, truncates messages, stalls, and
# flips bits, both ways, on a seeded schedule. The edge uploads four
# segments of a few MiB (32 KiB chunks, so hundreds of them); the cloud
# publishes one that the edge downloads. Checks:
#   - both transfers complete, and the manifests agree (ids, checksums,
#     counts) on both sides;
#   - every vector is on the other side, bit for bit (get);
#   - while the upload runs, the cloud only ever shows whole, verified
#     segments (a watcher lists, counts, searches and gets all along);
#   - each cut, truncation or flip costs at most one chunk window sent
#     again (the proxy's counts of chunk messages and bytes, and the
#     agents' own byte counters), and checksum failures are counted by
#     both sides (`edgesync peers --json`);
#   - bits flipped in the other messages (hello, begin, commit, replies:
#     names, sizes, offsets no chunk CRC covers) are caught by each
#     message's CRC32C trailer and cost at most a retry: the same end
#     state, nothing installed wrong;
#   - no staged leftovers or orphan segment files at the end.
# The seed is printed; ES_TEST_SEED=N replays a run. KEEP=1 keeps the
# directory; ES_PROXY_EXTRA adds options to the proxy (to explore).
# usage: sync_faults.sh EDGESYNC_BINARY FAULT_PROXY_BINARY SOURCE_DIR
es=$1
proxy=$2
src=$3
. "$src/tests/agent/sync_lib.sh"

seed=${ES_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "sync_faults: seed $seed (ES_TEST_SEED=$seed to replay)"

# What the agents are given: chunks of 32 KiB. WINDOW is how many chunks
# one segment has in flight: the edge splits a chunk into `window`
# requests (sync/PROTOCOL.md, "Window"), so one chunk whatever the
# window; a cut may cost that much. Messages of at least BIG bytes are
# the chunk (or fetch reply) messages the proxy hurts.
WAIT_S=${ES_SYNC_WAIT_S:-90}
CHUNK=32768
WINDOW=${ES_SYNC_WINDOW:-1}
BIG=4096
SYNC=(--token "$TOKEN" --chunk-size $CHUNK)
EDGE=(--sync-interval 200 --backoff-max 1000)

# ---- data: four upload batches (distinct sizes), one published ---------
: >"$dir/up.layout"
first=0
for n in 4096 5120 6144 7168; do
	check gen "$dir/up-$n.fvecs" $((seed + n)) $n 128
	echo "$first $dir/up-$n.fvecs" >>"$dir/up.layout"
	first=$((first + 100000))
done
check gen "$dir/pub.fvecs" $((seed + 1)) 8192 64
echo "0 $dir/pub.fvecs" >"$dir/pub.layout"

# ---- the proxy, then the edge behind it --------------------------------
cport=$(free_port)
# Random faults on both directions (per mille of chunk messages, at most 6
# a direction; cuts of other messages too: hello, begin, commit, replies),
# and some that always happen: a truncated hello, cuts, truncations,
# stalls and flips in the middle of chunk messages both ways (offsets
# below BIG, so inside any chunk message).
$proxy --target "127.0.0.1:$cport" --port-file "$dir/proxy.port" \
	--stats "$dir/proxy.json" --log "$dir/proxy.log" --seed "$seed" \
	--big $BIG --dir both --cut 10 --truncate 10 --flip 20 --stall 5 \
	--stall-ms 300 --max-faults 6 --cut-small 10 --flip-small 10 \
	--max-small 6 \
	--event up:@30:truncate \
	--event up:10:3000:cut --event up:40:3500:truncate \
	--event up:70:2000:flip --event up:100:2000:stall \
	--event up:130:3000:flip --event up:200:1000:cut \
	--event down:3:3000:flip --event down:20:3500:truncate \
	--event down:40:500:cut --event down:50:700:stall \
	${ES_PROXY_EXTRA:-} 2>>"$dir/proxy.log" &
proxy_pid=$!
EXTRA_PIDS+=("$proxy_pid")
wait_for "the proxy's port" test -s "$dir/proxy.port"
pport=$(cat "$dir/proxy.port")

start e --role edge --peer "tcp://127.0.0.1:$pport" "${SYNC[@]}" "${EDGE[@]}"
e_id=$(device_of e)
must e collection create up --dim 128
while read -r first f; do
	must e import up "$f" --first-id "$first" --batch 2000
	must e flush up
done <"$dir/up.layout"
segs e up "$dir/edge-up.json"
[ "$(check count_segments "$dir/edge-up.json")" = 4 ] && ok ||
	bad "the edge sealed $(check count_segments "$dir/edge-up.json") segments"

# ---- the cloud: the upload starts; a watcher looks at it all along -----
start c --role cloud --listen "tcp://127.0.0.1:$cport" "${SYNC[@]}"
c_id=$(device_of c)
$PY "$src/tests/agent/sync_check.py" "$src" watch "${SOCK[c]}" up \
	"$dir/up.layout" "$dir/edge-up.json" "$dir/watch.stop" \
	"$dir/watch.json" 2>"$dir/watch.log" &
watch_pid=$!
EXTRA_PIDS+=("$watch_pid")
must c collection create pub --dim 64 --publish
must c import pub "$dir/pub.fvecs" --batch 2000
must c flush pub
must e sync-now

uploaded() { agree e c up 4 "$e_id"; }
downloaded() { agree c e pub 1 "$c_id"; }
wait_for "the four segments on the cloud" uploaded
wait_for "the published segment on the edge" downloaded
touch "$dir/watch.stop"
wait "$watch_pid"
if check watched "$dir/watch.json" 4; then ok; else
	bad "the cloud showed something else than whole segments"
	cat "$dir/watch.log"
fi

# ---- what arrived ------------------------------------------------------
if agree e c up 4 "$e_id"; then ok; else bad "up: manifests differ"; fi
if agree c e pub 1 "$c_id"; then ok; else bad "pub: manifests differ"; fi
if check all_present "${SOCK[c]}" up "$dir/up.layout"; then ok; else
	bad "the cloud lacks uploaded vectors"; fi
if check all_present "${SOCK[e]}" pub "$dir/pub.layout"; then ok; else
	bad "the edge lacks published vectors"; fi

# ---- what it cost ------------------------------------------------------
# The agents' counters first, then the proxy's once the edge is gone (the
# proxy then has seen every message the agents counted).
wait_for "the edge's peer counters" peers e "$dir/edge-peers.json"
wait_for "the cloud's peer counters" peers c "$dir/cloud-peers.json"
stop e
closed() {
	check field "$dir/proxy.json" connections >"$dir/n1" &&
		check field "$dir/proxy.json" closed >"$dir/n2" &&
		cmp -s "$dir/n1" "$dir/n2"
}
wait_for "the proxy to see the edge go" closed
up_sizes=$($PY -c 'import json,sys; print(",".join(str(s["size"]) for s in json.load(open(sys.argv[1]))["segments"]))' "$dir/edge-up.json")
segs c pub "$dir/cloud-pub.json"
down_sizes=$($PY -c 'import json,sys; print(",".join(str(s["size"]) for s in json.load(open(sys.argv[1]))["segments"]))' "$dir/cloud-pub.json")
if check bounds "$dir/proxy.json" "$dir/edge-peers.json" \
	"$dir/cloud-peers.json" "$up_sizes" "$down_sizes" $CHUNK $WINDOW; then
	ok
else
	bad "more was sent again than the faults allow"
fi
for k in up.cut up.truncate up.flip up.stall down.cut down.truncate \
	down.flip down.stall; do
	v=$(check field "$dir/proxy.json" "${k%.*}" "${k#*.}")
	[ "${v:-0}" -ge 1 ] && ok || bad "the proxy did no $k"
done

stop c
on_disk e 5
on_disk c 5
kill -TERM "$proxy_pid"
wait "$proxy_pid"
sanitizers_quiet
finish sync_faults
