#!/usr/bin/env python3
"""An independent NDVS implementation, written from ../shared/spec/ndvs.md
alone (no code shared with edgesync's C), used to check edgesync both ways:

  ndvs_ref.py write OUT.ndvs --fvecs FILE.fvecs [--first-id N] [--created-by S]
      writes FILE's vectors as a segment the way a NodeDB writer would;
  ndvs_ref.py check SEG.ndvs --fvecs FILE.fvecs [--first-id N]
      checks SEG byte by byte: every header and footer field, the rows
      against FILE, the pad, the ids N, N+1, ..., and the CRC32C;
  ndvs_ref.py fvecs OUT.fvecs --dim D --count N [--seed S]
      writes N random D-dimensional vectors (for odd/even pad cases).

Exit 0 on success; otherwise 1 and the first difference found.
"""
import argparse
import random
import struct
import sys

POLY = 0x82F63B78


def _table():
    t = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _table()


def crc32c(data):
    c = 0xFFFFFFFF
    t = TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def read_fvecs(path):
    raw = open(path, "rb").read()
    if len(raw) < 4:
        raise SystemExit(f"{path}: not an .fvecs file")
    dim = struct.unpack_from("<i", raw, 0)[0]
    rec = 4 + 4 * dim
    if dim <= 0 or len(raw) % rec:
        raise SystemExit(f"{path}: not whole records of dim {dim}")
    rows = []
    for off in range(0, len(raw), rec):
        if struct.unpack_from("<i", raw, off)[0] != dim:
            raise SystemExit(f"{path}: mixed dimensions")
        rows.append(raw[off + 4:off + rec])
    return dim, rows


def segment_bytes(dim, rows, first_id, created_by):
    n = len(rows)
    body = bytearray()
    body += b"NDVS" + struct.pack("<HHIQBB", 1, 0, dim, n, 0, 0) + bytes(10)
    assert len(body) == 32
    for r in rows:
        body += r
    if (4 * dim * n) % 8:
        body += bytes(4)
    for i in range(n):
        body += struct.pack("<Q", first_id + i)
    name = created_by.encode("ascii")
    assert len(name) <= 31
    footer = struct.pack("<H", 1) + name + bytes(32 - len(name))
    footer += struct.pack("<II", crc32c(body), 46) + b"NDVS"
    assert len(footer) == 46
    return bytes(body + footer)


def fail(msg):
    print(f"ndvs_ref: {msg}", file=sys.stderr)
    sys.exit(1)


def check(path, dim, rows, first_id):
    b = open(path, "rb").read()
    n = len(rows)
    pad = 4 if (4 * dim * n) % 8 else 0
    size = 32 + 4 * dim * n + pad + 8 * n + 46
    if len(b) != size:
        fail(f"size {len(b)}, expected {size}")
    fields = [("magic", b[0:4], b"NDVS"),
              ("format_version", b[4:6], struct.pack("<H", 1)),
              ("flags", b[6:8], bytes(2)),
              ("dim", b[8:12], struct.pack("<I", dim)),
              ("count", b[12:20], struct.pack("<Q", n)),
              ("dtype", b[20:21], b"\0"), ("codec", b[21:22], b"\0"),
              ("reserved", b[22:32], bytes(10))]
    for name, got, want in fields:
        if got != want:
            fail(f"header {name}: {got.hex()} != {want.hex()}")
    off = 32
    for i, r in enumerate(rows):
        if b[off:off + 4 * dim] != r:
            fail(f"row {i} differs")
        off += 4 * dim
    if b[off:off + pad] != bytes(pad):
        fail("pad not zero")
    off += pad
    for i in range(n):
        if struct.unpack_from("<Q", b, off + 8 * i)[0] != first_id + i:
            fail(f"id of row {i} is not {first_id + i}")
    f = b[-46:]
    if f[0:2] != struct.pack("<H", 1):
        fail("footer format_version")
    cb = f[2:34]
    text = cb.split(b"\0", 1)[0]
    if len(text) > 31 or cb[len(text):] != bytes(32 - len(text)) or \
            any(c < 0x20 or c > 0x7E for c in text):
        fail(f"created_by not NUL-padded ASCII: {cb!r}")
    crc = struct.unpack_from("<I", f, 34)[0]
    if crc != crc32c(b[:-46]):
        fail(f"checksum 0x{crc:08x} != 0x{crc32c(b[:-46]):08x}")
    if f[38:42] != struct.pack("<I", 46) or f[42:46] != b"NDVS":
        fail("footer_size or trailing magic")
    print(f"{path}: {n} x {dim}, pad {pad}, created_by "
          f"{text.decode()!r}, crc32c 0x{crc:08x}: every byte as the spec says")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["write", "check", "fvecs"])
    ap.add_argument("path")
    ap.add_argument("--fvecs")
    ap.add_argument("--first-id", type=int, default=0)
    ap.add_argument("--created-by", default="nodedb-ref 1")
    ap.add_argument("--dim", type=int)
    ap.add_argument("--count", type=int)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "fvecs":
        rng = random.Random(a.seed)
        with open(a.path, "wb") as out:
            for _ in range(a.count):
                out.write(struct.pack("<i", a.dim))
                out.write(struct.pack(f"<{a.dim}f", *[rng.uniform(-1, 1)
                                                    for _ in range(a.dim)]))
        return
    dim, rows = read_fvecs(a.fvecs)
    if a.cmd == "write":
        with open(a.path, "wb") as out:
            out.write(segment_bytes(dim, rows, a.first_id, a.created_by))
    else:
        check(a.path, dim, rows, a.first_id)


if __name__ == "__main__":
    main()
