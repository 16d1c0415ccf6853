"""Checks of the sync tests with real agents (sync_cli.sh, sync_faults.sh,
sync_kills.sh).

usage: /usr/bin/python3 sync_check.py SOURCE_DIR COMMAND ARGS...
Exit status 0 when the check holds; what is wrong goes to stderr. Talks to
agents through the CLI's JSON (files the scripts wrote) or, for bulk reads,
the local API with agent/examples/client.py.
"""
import array
import json
import os
import random
import struct
import sys
import time

SRC = sys.argv[1]
sys.path.insert(0, os.path.join(SRC, "agent", "examples"))


def load(path):
    with open(path) as f:
        return json.load(f)


def fail(msg):
    print(msg, file=sys.stderr)
    return False


# ---- data ------------------------------------------------------------------

def gen(path, seed, count, dim):
    """count vectors of dim into a texmex .fvecs file; values k/256 with
    k a 16-bit integer, exact in float32."""
    rng = random.Random(int(seed))
    count, dim = int(count), int(dim)
    raw = array.array("h")
    raw.frombytes(rng.randbytes(count * dim * 2))
    vals = array.array("f", (x / 256.0 for x in raw))
    head = struct.pack("<i", dim)
    with open(path, "wb") as f:
        for i in range(count):
            f.write(head)
            f.write(vals[i * dim:(i + 1) * dim].tobytes())


def gen_many(prefix, seed, n, count, dim):
    """n files PREFIX-0.fvecs ...: gen with seeds seed, seed + 1, ..."""
    for i in range(int(n)):
        gen("%s-%d.fvecs" % (prefix, i), int(seed) + i, count, dim)


def read_fvecs(path):
    """[bytes of each vector, little-endian float32]"""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off < len(data):
        (dim,) = struct.unpack_from("<i", data, off)
        out.append(data[off + 4:off + 4 + 4 * dim])
        off += 4 + 4 * dim
    return out


def layout_load(path):
    """The layout file: one line per batch, "first_id fvecs_path"."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                first, fv = line.split()
                out.append((int(first), fv))
    return out


# ---- CLI JSON --------------------------------------------------------------

def field(path, *keys):
    """Prints a field of a JSON file: keys walk maps, integers lists."""
    v = load(path)
    for k in keys:
        v = v[int(k)] if isinstance(v, list) else v[k]
    print(v)


def peer(path, key):
    """Prints a field of the only peer in `peers --json` output."""
    peers = load(path)["peers"]
    if len(peers) != 1:
        return fail("%d peers in %s" % (len(peers), path))
    print(peers[0][key])


def crc(v):
    """A checksum as the CLI prints it ("0x...") or the API sends it."""
    return int(v, 16) if isinstance(v, str) else v


def ident(path, origin=""):
    return sorted((s["origin"], s["checksum"], s["count"], s["size"],
                   s["seal_hlc"], s["clock_runs"], s["clocks_crc"])
                  for s in load(path)["segments"]
                  if not origin or s["origin"] == origin)


def same_segments(a, b, n="", origin=""):
    """Both lists hold the same segments (of origin), n of them if given."""
    x, y = ident(a, origin), ident(b, origin)
    if x != y:
        return fail("segments differ:\n  %s\n  %s" % (x, y))
    if n and len(x) != int(n):
        return fail("%d segments, %s expected" % (len(x), n))
    return bool(x)


def count_segments(path, origin=""):
    print(len(ident(path, origin)))


def vectors(path, n):
    """`collection info --json`: n live vectors, nothing growing."""
    c = load(path)
    if c["vectors"] != int(n) or c["growing"] != 0:
        return fail("%d vectors (%d growing), %s expected" %
                    (c["vectors"], c["growing"], n))
    return True


def has_segments(path, n, origin="", indexed=""):
    """At least n segments (of origin), all indexed if asked (empty ones
    have no index)."""
    segs = [s for s in load(path)["segments"]
            if not origin or s["origin"] == origin]
    return len(segs) >= int(n) and (not indexed or all(
        s["indexed"] or s["count"] == 0 for s in segs))


def same_index(a, b, origin):
    """Both lists hold the same indexed segments of origin, same index."""
    def sizes(p):
        return sorted((s["checksum"], s["indexed"], s["index_size"])
                      for s in load(p)["segments"] if s["origin"] == origin)
    x, y = sizes(a), sizes(b)
    if x != y or not x or not all(s[1] for s in x):
        return fail("indexes of %s: %s vs %s" % (origin, x, y))
    return True


def same_search(a, b):
    """Two `search --queries --json` outputs: the same ids, distances
    within 1e-4."""
    la = [json.loads(line) for line in open(a)]
    lb = [json.loads(line) for line in open(b)]
    if len(la) != len(lb) or not la:
        return False
    for qa, qb in zip(la, lb):
        if qa["ids"] != qb["ids"] or not qa["ids"]:
            return fail("query %d: %s vs %s" %
                        (qa["query"], qa["ids"], qb["ids"]))
        for da, db in zip(qa["distances"], qb["distances"]):
            if abs(da - db) > 1e-4 * max(1.0, abs(da)):
                return False
    return True


def status_vectors(path, n):
    """`status --json`: n vectors in all."""
    return load(path)["vectors"] == int(n)


def lacks(path, name):
    """`collection list --json` has no collection name."""
    return name not in [c["name"] for c in load(path)["collections"]]


PEER_FIELDS = ["peer", "device", "connected", "last_success_ms",
               "segments_pending", "bytes_pending", "lag_s", "bytes_sent",
               "bytes_received", "checksum_failures", "segments_sent",
               "segments_received", "last_error", "awaiting_approval"]


def peers_fields(path, n):
    """`peers --json`: n peers, each with exactly PEER_FIELDS."""
    peers = load(path)["peers"]
    return len(peers) == int(n) and all(
        sorted(p) == sorted(PEER_FIELDS) for p in peers)


def peer_error(path):
    """Every peer shows an error and never succeeded."""
    peers = load(path)["peers"]
    return bool(peers) and all(p["last_error"] and not p["last_success_ms"]
                               for p in peers)


def peer_ok(path, device):
    """device synced, has nothing pending and no error."""
    return any(p["device"] == device and p["last_success_ms"] > 0
               and p["segments_pending"] == 0 and not p["last_error"]
               for p in load(path)["peers"])


def awaiting(path, device, want="1"):
    """device is (want 1) or is not (0) awaiting approval."""
    got = [p["awaiting_approval"] for p in load(path)["peers"]
           if p["device"] == device]
    return bool(got) and got[0] == (want == "1")


def cloud_peers(path, *devices):
    """The cloud's peers are exactly devices."""
    return sorted(p["device"] for p in load(path)["peers"]) == sorted(devices)


def staging_empty(dirpath):
    left = [f for f in os.listdir(dirpath)] if os.path.isdir(dirpath) else []
    if left:
        return fail("staging not empty: %s" % left)
    return True


# ---- the proxy's counters against the agents' ------------------------------

def bounds(stats, edge_peers, cloud_peers, layout_up, layout_down, chunk,
           window):
    """
    The bytes sent again stay within one chunk window (window chunks of
    chunk bytes) per fault that can lose data in flight (cut, truncate,
    flip, and a flip in a small message either way): the proxy counts the bytes of the "data" fields it passed in
    chunk messages (fetch replies down), partial ones included, so what
    was sent again is that count less the data's size. Every flip is
    caught and counted, by both sides for uploads.
    """
    st = load(stats)
    e = load(edge_peers)["peers"][0]
    c = load(cloud_peers)["peers"][0]
    chunk, window = int(chunk), int(window)
    ok = True

    def data(layout):
        return sum(int(s) for s in layout.split(",") if s)

    def lossy(d):
        # A flipped small message is refused by its trailer and may cost
        # the chunk it answered: a reply to an upload's chunk goes down,
        # a request of a download's piece goes up, so small flips count
        # against the data of both directions.
        s = st[d]
        return (s["cut"] + s["truncate"] + s["flip"] +
                st["up"]["small_flip"] + st["down"]["small_flip"])

    for d, layout in (("up", layout_up), ("down", layout_down)):
        size = data(layout)
        s = st[d]
        allowed = lossy(d) * window * chunk
        again = s["payload"] - size
        print("%s: %d bytes of data, %d sent again (%.2f chunks) in %d "
              "chunk messages after %d cuts, %d truncations, %d flips, %d "
              "stalls (allowed %d)" %
              (d, size, again, again / chunk, s["big_messages"], s["cut"],
               s["truncate"], s["flip"], s["stall"], allowed))
        if not 0 <= again <= allowed:
            ok = fail("%s: %d bytes sent again, outside [0, %d]" %
                      (d, again, allowed))
    # the agents' own counters: the edge's bytes sent and the cloud's
    # bytes received cover the upload, the other two the download, each
    # within the same allowance plus 512 bytes per other message
    for who, key, d in (("edge", "bytes_sent", "up"),
                        ("cloud", "bytes_received", "up"),
                        ("edge", "bytes_received", "down"),
                        ("cloud", "bytes_sent", "down")):
        size = data(layout_up if d == "up" else layout_down)
        s = st[d]
        v = (e if who == "edge" else c)[key]
        cap = size + lossy(d) * window * chunk + s["messages"] * 512
        print("%s %s: %d (data %d, at most %d)" % (who, key, v, size, cap))
        if v < size or v > cap:
            ok = fail("%s %s = %d, outside [%d, %d]" %
                      (who, key, v, size, cap))
    # Every flip in a chunk's data is counted by the side that checks it;
    # a flip in another message (its trailer) by the receiver when it
    # knows the device (a damaged hello is refused, and not counted).
    flips_up, flips_down = st["up"]["flip"], st["down"]["flip"]
    small_up, small_down = st["up"]["small_flip"], st["down"]["small_flip"]
    print("checksum failures: edge %d, cloud %d; flips up %d, down %d; "
          "in other messages up %d, down %d" %
          (e["checksum_failures"], c["checksum_failures"], flips_up,
           flips_down, small_up, small_down))
    if flips_up and not 1 <= c["checksum_failures"] <= flips_up + small_up:
        ok = fail("the cloud counted %d checksum failures for %d + %d "
                  "flips" % (c["checksum_failures"], flips_up, small_up))
    every = flips_up + flips_down + small_up + small_down
    if flips_up + flips_down and not 1 <= e["checksum_failures"] <= every:
        ok = fail("the edge counted %d checksum failures for %d flips" %
                  (e["checksum_failures"], every))
    return ok


# ---- the local API ---------------------------------------------------------

def agent(sock):
    from client import Agent
    return Agent(sock, timeout_ms=60000)


def api_error(e):
    return getattr(e, "code", None)


def all_present(sock, coll, layout, sample=""):
    """Every vector of every batch of the layout is in coll, bit for bit
    (with sample: that many random ids per batch, and the count)."""
    from client import AgentError
    a = agent(sock)
    ok, total = True, 0
    rng = random.Random(1)
    try:
        for first, fv in layout_load(layout):
            vecs = read_fvecs(fv)
            total += len(vecs)
            idx = range(len(vecs))
            if sample:
                idx = rng.sample(idx, min(int(sample), len(vecs)))
            for i in idx:
                try:
                    r = a.call("get", collection=coll, id=first + i)
                except AgentError as e:
                    return fail("%s: id %d: %s" % (coll, first + i, e))
                if bytes(r["vector"]) != vecs[i]:
                    return fail("%s: id %d differs from what was inserted"
                                % (coll, first + i))
        info = a.call("collection.info", name=coll)["collection"]
        if info["vectors"] != total:
            ok = fail("%s holds %d vectors, %d were inserted" %
                      (coll, info["vectors"], total))
    finally:
        a.close()
    return ok


def watch(sock, coll, layout, expect, stop, out):
    """
    Runs until the file stop exists: looks at coll on the cloud again and
    again, and checks that only whole, verified segments are visible:
      S1 = segments; V = vectors; search and get; S2 = segments
      - every segment listed is one the edge sealed (count, checksum, size:
        expect is the edge's `segments --json`), never a partial one;
      - V is the count of a set of whole segments between S1 and S2;
      - every id a search returns, and every id get finds, belongs to a
        segment of S2, with its exact vector; an id get does not find
        belongs to no segment of S1.
    Writes {"rounds": N, "seen": [counts of segments seen], "errors": [...]}
    to out.
    """
    from client import AgentError
    batches = layout_load(layout)
    vecs = [read_fvecs(fv) for _, fv in batches]
    by_count = {}
    for (first, _), v in zip(batches, vecs):
        by_count[len(v)] = (first, v)
    edge = {s["count"]: dict(s, checksum=crc(s["checksum"]))
            for s in load(expect)["segments"]}
    rng = random.Random(2)
    rounds, seen, errors = 0, set(), []
    a = None

    def segs():
        try:
            return a.call("segments", collection=coll)["segments"]
        except AgentError as e:
            if api_error(e) == "not_found":
                return []
            raise

    def whole(ss, when):
        for s in ss:
            e = edge.get(s["count"])
            if not e or (crc(s["checksum"]), s["size"], s["origin"]) != (
                    e["checksum"], e["size"], e["origin"]):
                errors.append("%s: a segment that is not one of the edge's:"
                              " %s" % (when, s))

    while not os.path.exists(stop) and len(errors) < 20:
        try:
            if a is None:
                a = agent(sock)
            s1 = segs()
            try:
                v = a.call("collection.info", name=coll)["collection"]
                nv, growing = v["vectors"], v["growing"]
            except AgentError as e:
                if api_error(e) != "not_found":
                    raise
                nv, growing = 0, 0
            b = rng.randrange(len(batches))
            qv = vecs[b][rng.randrange(len(vecs[b]))]
            try:
                found = a.call("search", collection=coll, vector=qv, k=20,
                               L=64)["ids"]
            except AgentError as e:
                if api_error(e) != "not_found":
                    raise
                found = []
            probes = []
            for _ in range(8):
                b = rng.randrange(len(batches))
                i = rng.randrange(len(vecs[b]))
                try:
                    r = a.call("get", collection=coll, id=batches[b][0] + i)
                    probes.append((b, i, bytes(r["vector"])))
                except AgentError as e:
                    if api_error(e) != "not_found":
                        raise
                    probes.append((b, i, None))
            s2 = segs()
        except (OSError, AgentError) as e:
            errors.append("the cloud's API failed: %s" % e)
            break
        rounds += 1
        whole(s1, "before")
        whole(s2, "after")
        c1 = sorted(s["count"] for s in s1)
        c2 = sorted(s["count"] for s in s2)
        seen.update(c2)
        if not set(c1) <= set(c2):
            errors.append("a segment went away: %s then %s" % (c1, c2))
        extra = [c for c in c2 if c not in c1]
        sums = set()
        for m in range(1 << len(extra)):
            sums.add(sum(c1) + sum(c for j, c in enumerate(extra)
                                   if m >> j & 1))
        if growing or nv not in sums:
            errors.append("%d vectors (%d growing) between segments %s and "
                          "%s" % (nv, growing, c1, c2))
        ranges = [(by_count[c][0], by_count[c][0] + c) for c in c2
                  if c in by_count]
        for i in found:
            if not any(lo <= i < hi for lo, hi in ranges):
                errors.append("search found id %d outside the segments %s"
                              % (i, c2))
        for b, i, got in probes:
            cnt = len(vecs[b])
            if got is None:
                if cnt in c1:
                    errors.append("get %d: not found, but its segment was"
                                  " listed" % (batches[b][0] + i))
            elif cnt not in c2 or got != vecs[b][i]:
                errors.append("get %d: found outside a listed segment or "
                              "with other values" % (batches[b][0] + i))
        time.sleep(0.05)
    if a is not None:
        a.close()
    with open(out, "w") as f:
        json.dump({"rounds": rounds, "seen": sorted(seen),
                   "errors": errors}, f)


def watched(out, n):
    """The watcher ran, saw n segments arrive one by one, found nothing."""
    w = load(out)
    print("the watcher looked %d times; saw segments of %s" %
          (w["rounds"], w["seen"]))
    for e in w["errors"]:
        print("  " + e, file=sys.stderr)
    return not w["errors"] and w["rounds"] > 0 and len(w["seen"]) == int(n)


f = globals()[sys.argv[2]]
r = f(*sys.argv[3:])
sys.exit(0 if r is None or r else 1)
