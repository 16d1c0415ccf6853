#!/usr/bin/env bash
# Sync between real agents, as a user runs them: `edgesync agent` edges and
# clouds on loopback (free ports), data in a temporary directory, the CLI
# to drive and inspect them.
#   plain tcp with a token: an edge's segment reaches the cloud (same
#   origin, same checksum, same search results); a collection published on
#   the cloud reaches the edge; deletes (tombstones) travel; a second edge;
#   SIGKILL of the cloud, then of the edge, in the middle of a transfer and
#   a restart: everything arrives and both manifests agree; an edge with
#   --fetch-indexes takes a published segment with the cloud's index and
#   installs it indexed, building nothing; a published collection dropped
#   and created again reaches the edge whole; conflicts: the later write
#   wins on every replica though its device sealed first and sealed it
#   with a later write of its own; a wrong token
#   is refused. TLS with certificates signed by make_certs.sh's CA: an
#   allowed device syncs, one not in allow-devices is refused, shows as
#   awaiting approval on the cloud, syncs once `edgesync peers approve`d,
#   and is refused again once revoked.
# Every wait polls with a bound; nothing asserts on time.
# usage: sync_cli.sh EDGESYNC_BINARY SOURCE_DIR
es=$1
src=$2
TEST_TAG=sync
AGENT_OPTS=(--seal-threshold 1000000 --index-r 16 --index-l 32)
WAIT_S=180
. "$src/tests/agent/sync_lib.sh"

# has_segs NAME COLL N [ORIGIN [indexed]]: at least N segments (of ORIGIN)
has_segs() {
	segs "$1" "$2" "$dir/segs.json" &&
		check has_segments "$dir/segs.json" "$3" "${4:-}" "${5:-}"
}
# same_search A B COLL: the same answers to the test queries
same_search() {
	local rc=0
	$es -s "${SOCK[$1]}" --json search "$3" --queries "$dir/queries.fvecs" \
		--k 10 --L 200 >"$dir/sa.json" 2>"$dir/err" || rc=1
	$es -s "${SOCK[$2]}" --json search "$3" --queries "$dir/queries.fvecs" \
		--k 10 --L 200 >"$dir/sb.json" 2>>"$dir/err" || rc=1
	if [ $rc = 0 ] && check same_search "$dir/sa.json" "$dir/sb.json"; then
		ok
	else
		bad "searches of $3 differ between $1 and $2"
		cat "$dir/err"
	fi
}
peer_error() { # NAME: a peer shows an error and nothing connected
	cli "$1" --json peers && check peer_error "$dir/out"
}
peer_error_now() { # NAME: its peer's last error is a refusal to approve
	cli "$1" --json peers && grep -q "edgesync peers approve" "$dir/out"
}
staging_part() { # NAME: a transfer is half done in NAME's staging
	local f
	for f in "$dir/$1"/sync-staging/*.part; do
		[ -s "$f" ] && return 0
	done
	return 1
}


# ---- data: clustered vectors, texmex .fvecs ----------------------------
dim=16
python3 - "$dir" "$dim" <<'EOF'
import random, struct, sys
d, dim = sys.argv[1], int(sys.argv[2])
rng = random.Random(11)
def clustered(n, dim, k):
    centres = [[rng.uniform(-10, 10) for _ in range(dim)] for _ in range(k)]
    for _ in range(n):
        c = rng.choice(centres)
        yield [x + rng.gauss(0, 1) for x in c]
def write(path, rows):
    with open(path, "wb") as f:
        for r in rows:
            f.write(struct.pack("<i%df" % len(r), len(r), *r))
write(d + "/base.fvecs", clustered(2000, dim, 12))
write(d + "/more.fvecs", clustered(1000, dim, 12))
write(d + "/queries.fvecs", clustered(12, dim, 12))
# 6 MiB segments: several chunks, so a transfer can be cut in the middle
write(d + "/big.fvecs", clustered(6144, 256, 8))
EOF

# ---- plain tcp with a token: one edge, one cloud -----------------------
port=$(free_port)
start c1 --role cloud --listen "tcp://127.0.0.1:$port" --token "$TOKEN"
# the socket is up before sync starts: the warning may follow it
wait_for "the cloud's warning about plain tcp" grep -q "plain tcp" "$dir/c1.log"
# an edge: every option on the command line; 1 MiB/s so that a big
# segment takes a few seconds on the wire
start e1 --role edge --peer "tcp://127.0.0.1:$port" --token "$TOKEN" \
	--sync-interval 200 --bandwidth 1M
c1_id=$(device_of c1)
e1_id=$(device_of e1)
[ -n "$c1_id" ] && [ -n "$e1_id" ] && [ "$c1_id" != "$e1_id" ] && ok ||
	bad "device ids '$c1_id' '$e1_id'"

# a collection created on the edge uploads by default
must e1 --json collection create docs --dim $dim
check field "$dir/out" sync | grep -qx upload && ok || bad "docs is not upload"
must e1 import docs "$dir/base.fvecs"
must e1 flush docs
wait_for "docs on the cloud" has_segs c1 docs 1 "$e1_id"
wait_for "docs indexed on the edge" has_segs e1 docs 1 "$e1_id" indexed
wait_for "docs indexed on the cloud" has_segs c1 docs 1 "$e1_id" indexed
if agree e1 c1 docs "" "$e1_id"; then ok; else bad "docs: manifests differ"; fi
same_search e1 c1 docs
# the cloud made the collection on the first upload; it does not publish it
must c1 --json collection info docs
check field "$dir/out" sync | grep -qx none && ok || bad "cloud docs sync"
must c1 --json status
check status_vectors "$dir/out" 2000 && ok || bad "cloud vectors: $(cat "$dir/out")"

# peers, status, sync-now
must e1 --json peers
check peers_fields "$dir/out" 1 && ok || bad "edge peers: $(cat "$dir/out")"
wait_for "the edge's peer state" eval \
	'cli e1 --json peers && check peer_ok "$dir/out" "$c1_id"'
must c1 --json peers
check peers_fields "$dir/out" 1 && ok || bad "cloud peers: $(cat "$dir/out")"
check cloud_peers "$dir/out" "$e1_id" && ok || bad "cloud peers: $(cat "$dir/out")"
must e1 status
grep -q "^sync .*tcp://127.0.0.1:$port ($c1_id): connected" "$dir/out" &&
	ok || bad "status lacks the sync line: $(cat "$dir/out")"
must e1 sync-now
must c1 sync-now

# a collection published on the cloud reaches the edge
must c1 --json collection create catalog --dim $dim --publish
check field "$dir/out" sync | grep -qx download && ok || bad "catalog sync"
must c1 import catalog "$dir/more.fvecs" --first-id 50000
must c1 flush catalog
must e1 sync-now
wait_for "catalog on the edge" has_segs e1 catalog 1 "$c1_id" indexed
wait_for "catalog indexed on the cloud" has_segs c1 catalog 1 "$c1_id" indexed
if agree c1 e1 catalog "" "$c1_id"; then ok; else bad "catalog: manifests differ"; fi
same_search c1 e1 catalog
# on the edge it downloads; it does not go back up
must e1 --json collection info catalog
check field "$dir/out" sync | grep -qx download && ok || bad "edge catalog sync"

# a collection kept on the edge: --sync none
must e1 collection create private --dim $dim --sync none
must e1 import private "$dir/more.fvecs"
must e1 flush private

# deletes travel as tombstones with the next segment
must e1 get docs 5
must c1 get docs 5
must e1 delete docs 5 6 7
must e1 flush docs
wait_for "the tombstones on the cloud" has_segs c1 docs 2 "$e1_id"
if cli c1 get docs 5; then bad "id 5 still on the cloud"; else
	grep -q not_found "$dir/err" && ok || bad "get 5: $(cat "$dir/err")"; fi
if agree e1 c1 docs "" "$e1_id"; then ok; else bad "docs after deletes"; fi
wait_for "docs indexed on the cloud" has_segs c1 docs 2 "$e1_id" indexed
wait_for "docs indexed on the edge" has_segs e1 docs 2 "$e1_id" indexed
same_search e1 c1 docs

# ---- a second edge into the same cloud ---------------------------------
start e2 --role edge --peer "tcp://127.0.0.1:$port" --token "$TOKEN" \
	--sync-interval 200
e2_id=$(device_of e2)
must e2 collection create docs --dim $dim
must e2 import docs "$dir/more.fvecs" --first-id 100000
must e2 flush docs
wait_for "e2's docs on the cloud" has_segs c1 docs 1 "$e2_id"
if agree e2 c1 docs "" "$e2_id"; then ok; else bad "e2 docs: manifests differ"; fi
if agree e1 c1 docs "" "$e1_id"; then ok; else bad "e1 docs changed"; fi
wait_for "catalog on e2" has_segs e2 catalog 1 "$c1_id"
if agree c1 e2 catalog "" "$c1_id"; then ok; else bad "e2 catalog differs"; fi
wait_for "both edges on the cloud" eval \
	'cli c1 --json peers && check cloud_peers "$dir/out" "$e1_id" "$e2_id"'
must c1 --json collection list
check lacks "$dir/out" private && ok || bad "private reached the cloud"

# ---- conflicts: the later write wins, whichever device seals first ------
# el (rounds only on sync-now) writes ids 5 and 6; a second later e2
# deletes 5 and writes 6, seals and ships; a second after that el writes
# 9, then seals its writes into one segment and syncs. The later writes
# stand on all three: each row keeps its own write's clock, not its
# seal's, nor its segment's newest (9's, which is later than e2's). The
# seconds between the writes order their clocks; nothing waits on time
# for a result.
start el --role edge --peer "tcp://127.0.0.1:$port" --token "$TOKEN" \
	--sync-interval 3600000
el_id=$(device_of el)
# the edges' first: e2 would otherwise download the published one first
must el collection create shared --dim 2 --sync both
must e2 collection create shared --dim 2 --sync both
must c1 collection create shared --dim 2 --publish
must el insert shared --id 5 --vector 1,1
must el insert shared --id 6 --vector 1,1
sleep 1.1
must e2 delete shared 5
must e2 insert shared --id 6 --vector 2,2
must e2 flush shared
wait_for "e2's shared on the cloud" has_segs c1 shared 1 "$e2_id"
sleep 1.1
must el insert shared --id 9 --vector 3,3
must el flush shared
must el sync-now
wait_for "el's shared on the cloud" has_segs c1 shared 1 "$el_id"
wait_for "el's shared on e2" has_segs e2 shared 1 "$el_id"
wait_for "e2's shared on el" has_segs el shared 1 "$e2_id"
for n in c1 el e2; do
	if cli $n get shared 5; then bad "$n: id 5 is back: $(cat "$dir/out")"
	else grep -q not_found "$dir/err" && ok || bad "$n get 5: $(cat "$dir/err")"; fi
	must $n get shared 6
	grep -q "^2,2" "$dir/out" && ok || bad "$n: id 6 is $(cat "$dir/out")"
	must $n get shared 9
	grep -q "^3,3" "$dir/out" && ok || bad "$n: id 9 is $(cat "$dir/out")"
done
stop el

# ---- an edge that takes the cloud's indexes ----------------------------
# catalog is indexed on c1 (above): ei downloads segment and index, and
# installs the segment indexed, so it never builds one
start ei --role edge --peer "tcp://127.0.0.1:$port" --token "$TOKEN" \
	--sync-interval 200 --fetch-indexes
wait_for "catalog indexed on ei" has_segs ei catalog 1 "$c1_id" indexed
if agree c1 ei catalog "" "$c1_id"; then ok; else bad "ei catalog differs"; fi
segs c1 catalog "$dir/a.json" && segs ei catalog "$dir/b.json" &&
	check same_index "$dir/a.json" "$dir/b.json" "$c1_id" && ok ||
	bad "ei's catalog index is not the cloud's"
grep -q "collection catalog: installed segment .* with its peer's index" \
	"$dir/ei.log" && ok || bad "ei did not install catalog with its index"
if grep -q "index of segment .* dropped" "$dir/ei.log"; then
	bad "ei dropped an index: $(grep dropped "$dir/ei.log")"; else ok; fi
same_search c1 ei catalog
# published while ei runs: ei sees it before the cloud indexed it (or
# after), waits for the index (index-wait) and takes the two together
must c1 collection create catalog2 --dim $dim --publish
must c1 import catalog2 "$dir/base.fvecs" --first-id 70000
must c1 flush catalog2
wait_for "catalog2 indexed on ei" has_segs ei catalog2 1 "$c1_id" indexed
grep -q "collection catalog2: installed segment .* with its peer's index" \
	"$dir/ei.log" && ok || bad "ei did not install catalog2 with its index"
segs c1 catalog2 "$dir/a.json" && segs ei catalog2 "$dir/b.json" &&
	check same_index "$dir/a.json" "$dir/b.json" "$c1_id" && ok ||
	bad "ei's catalog2 index is not the cloud's"
stop ei

# ---- a published collection dropped and created again ------------------
# The new one's versions count on from the dropped one's, so the edge,
# which acknowledged the old one's, still takes each of its segments.
must c1 collection create menu --dim $dim --publish
must c1 import menu "$dir/more.fvecs" --first-id 60000
must c1 flush menu
must e1 sync-now
wait_for "menu on the edge" has_segs e1 menu 1 "$c1_id"
must c1 collection drop menu
must c1 collection create menu --dim $dim --publish
for first in 70000 80000; do
	must c1 import menu "$dir/more.fvecs" --first-id $first
	must c1 flush menu
done
must e1 sync-now
wait_for "the new menu's segments on the edge" has_segs e1 menu 3 "$c1_id"
must e1 get menu 70000
must e1 get menu 80999

# ---- SIGKILL the cloud in the middle of a transfer ---------------------
must e1 collection create big --dim 256
must e1 import big "$dir/big.fvecs"
must e1 flush big
if wait_for "a half-done upload on the cloud" staging_part c1; then
	crash c1
	start c1 --role cloud --listen "tcp://127.0.0.1:$port" \
		--token "$TOKEN"
fi
must e1 sync-now
wait_for "big on the cloud after its restart" has_segs c1 big 1 "$e1_id"
if agree e1 c1 big "" "$e1_id"; then ok; else bad "big: manifests differ"; fi
for coll in docs; do
	if agree e1 c1 $coll "" "$e1_id" && agree e2 c1 $coll "" "$e2_id"; then
		ok; else bad "$coll after the cloud's restart"; fi
done

# ---- SIGKILL the edge in the middle of a transfer ----------------------
must e1 collection create big2 --dim 256
must e1 import big2 "$dir/big.fvecs" --first-id 7
must e1 flush big2
if wait_for "a half-done upload of big2" staging_part c1; then
	crash e1
	start e1 --role edge --peer "tcp://127.0.0.1:$port" \
		--token "$TOKEN" --sync-interval 200 --bandwidth 1M
fi
wait_for "big2 on the cloud after the edge's restart" \
	has_segs c1 big2 1 "$e1_id"
for coll in docs big big2; do
	if agree e1 c1 $coll "" "$e1_id"; then ok; else
		bad "$coll: manifests differ after the edge's restart"; fi
done
if agree c1 e1 catalog "" "$c1_id"; then ok; else bad "catalog after restarts"; fi

# ---- a wrong token is refused ------------------------------------------
start e3 --role edge --peer "tcp://127.0.0.1:$port" \
	--token wrong-token-0123456789 --sync-interval 200
must e3 collection create wrong --dim $dim
must e3 import wrong "$dir/more.fvecs"
must e3 flush wrong
wait_for "e3's refusal" peer_error e3
must c1 --json collection list
check lacks "$dir/out" wrong && ok || bad "a wrong token's data arrived"
if grep -qi "auth\|token" <<<"$(cli e3 --json peers; cat "$dir/out")"; then
	ok; else bad "e3's error does not say why: $(cat "$dir/out")"; fi
stop e3

# ---- TLS: certificates from make_certs.sh's CA -------------------------
mkdir -p "$dir/certs"
if ! ES_OPENSSL=${ES_OPENSSL:-openssl} sh "$src/tests/sync/make_certs.sh" \
	"$dir/certs" >"$dir/certs.log" 2>&1; then
	bad "make_certs.sh failed"
	cat "$dir/certs.log"
fi
# a device certificate's CN is the device id: learn the ids first
start t1
t1_id=$(device_of t1)
stop t1
start t2
t2_id=$(device_of t2)
stop t2
sign() { # NAME CN
	local o=${ES_OPENSSL:-openssl} c="$dir/certs"
	"$o" ecparam -name prime256v1 -genkey -noout -out "$c/$1.key" &&
		"$o" req -new -key "$c/$1.key" -subj "/CN=$2" -out "$c/$1.csr" &&
		"$o" x509 -req -in "$c/$1.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" \
			-CAcreateserial -days 2 -out "$c/$1.crt" 2>/dev/null
}
sign t1 "$t1_id" && sign t2 "$t2_id" && ok || bad "signing device certs"
C=$dir/certs
tport=$(free_port)
# every option in a file this time
cat >"$dir/cloud-tls.conf" <<EOF
[sync]
role = cloud
listen = tls+tcp://127.0.0.1:$tport
tls-cert = $C/cloud.crt
tls-key = $C/cloud.key
tls-ca = $C/ca.crt
allow-devices = dev-a, $t1_id
EOF
# a TLS cloud without allow-devices is valid: it admits approved devices
if $es agent -c "$dir/cloud-tls.conf" --allow-devices "" -n \
	>"$dir/out" 2>&1; then ok; else
	bad "a TLS cloud without allow-devices: $(cat "$dir/out")"
fi
start c2 -c "$dir/cloud-tls.conf"
tls_edge() { # NAME
	start "$1" --role edge --peer "tls+tcp://127.0.0.1:$tport" \
		--tls-cert "$C/$1.crt" --tls-key "$C/$1.key" --tls-ca "$C/ca.crt" \
		--sync-interval 200
}
tls_edge t1
tls_edge t2
for n in t1 t2; do
	must $n collection create secure --dim $dim
	must $n import secure "$dir/base.fvecs"
	must $n flush secure
done
wait_for "t1's segment over TLS" has_segs c2 secure 1 "$t1_id"
if agree t1 c2 secure "" "$t1_id"; then ok; else bad "secure: manifests differ"; fi
wait_for "t2's refusal" peer_error t2
segs c2 secure "$dir/c2.json"
if check has_segments "$dir/c2.json" 1 "$t2_id"; then
	bad "a device outside allow-devices synced"; else ok; fi
must t1 --json peers
check peers_fields "$dir/out" 1 && ok || bad "t1 peers: $(cat "$dir/out")"

# ---- run-time approval: t2 (not in allow-devices) ----------------------
cli t2 --json peers
grep -q "edgesync peers approve $t2_id" "$dir/out" && ok ||
	bad "t2's refusal does not say how to approve it: $(cat "$dir/out")"
grep -q "refused hello .*'$t2_id'.*not in allow_devices" "$dir/c2.log" && ok ||
	bad "the cloud did not log t2's refusal"
awaits() { # CLOUD DEVICE 1|0
	cli "$1" --json peers && check awaiting "$dir/out" "$2" "$3"
}
wait_for "t2 awaiting approval on the cloud" awaits c2 "$t2_id" 1
cli c2 peers
grep -q "awaiting" "$dir/out" && ok || bad "peers: $(cat "$dir/out")"
# bad ids, unknown devices, an edge: clear errors, exit codes
cli c2 peers approve "has space"
[ $? = 64 ] && grep -q "contains a space" "$dir/err" && ok ||
	bad "approve 'has space': $(cat "$dir/err")"
cli c2 peers approve "$(printf 'x%.0s' $(seq 65))"
[ $? = 64 ] && grep -q "at most 64" "$dir/err" && ok ||
	bad "approve of a long id: $(cat "$dir/err")"
cli c2 peers revoke never-seen
[ $? = 1 ] && grep -q "unknown to this cloud" "$dir/err" && ok ||
	bad "revoke never-seen: $(cat "$dir/err")"
cli t1 peers approve "$t2_id"
[ $? = 1 ] && grep -q "is an edge" "$dir/err" && ok ||
	bad "approve on an edge: $(cat "$dir/err")"
cli c2 peers approve
[ $? = 64 ] && ok || bad "approve without a device"
cli c2 peers approve --help
[ $? = 0 ] && grep -q "usage: edgesync peers approve DEVICE" "$dir/out" &&
	ok || bad "approve --help: $(cat "$dir/out")"
# a device in allow-devices: approval does not matter, and it is said
cli c2 --json peers approve "$t1_id"
[ $? = 0 ] && grep -q '"allow_listed":true' "$dir/out" && ok ||
	bad "approve an allowed device: $(cat "$dir/out" "$dir/err")"
# approve t2: it syncs
must c2 peers approve "$t2_id"
grep -q "approved" "$dir/out" && ok || bad "approve: $(cat "$dir/out")"
must t2 sync-now
wait_for "t2's segment after its approval" has_segs c2 secure 1 "$t2_id"
if agree t2 c2 secure "" "$t2_id"; then ok; else bad "t2: manifests differ"; fi
wait_for "t2 no longer awaiting" awaits c2 "$t2_id" 0
# revoke t2: its connection closes, its next hello is refused
must c2 --json peers revoke "$t2_id"
grep -q '"approved":false' "$dir/out" && ok || bad "revoke: $(cat "$dir/out")"
must t2 import secure "$dir/more.fvecs"
must t2 flush secure
must t2 sync-now
wait_for "t2 awaiting approval again" awaits c2 "$t2_id" 1
wait_for "t2 refused again" peer_error_now t2
segs c2 secure "$dir/c2.json"
if check has_segments "$dir/c2.json" 2 "$t2_id"; then
	bad "a revoked device synced"; else ok; fi

# ---- everything stops cleanly ------------------------------------------
for n in t1 t2 c2 e1 e2 c1; do stop $n; done
for n in c1 e1; do
	grep -q "sync: stopping" "$dir/$n.log" && ok || bad "$n: no sync stop"
done
sanitizers_quiet
finish sync_cli
