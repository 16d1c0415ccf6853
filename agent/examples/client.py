#!/usr/bin/python3
"""Talk to a local edgesync agent from Python (agent/PROTOCOL.md).

Needs only Debian packages: python3-cbor2 and libnng1 (used through
ctypes, no binding to build). Run with the system interpreter:

    /usr/bin/python3 client.py --socket /run/edgesync/agent.sock

It creates a collection (dropping an old one of the same name), inserts a
few vectors, searches, reads one vector back and prints what it got. The
collection is left in place; pass --drop to remove it at the end.
"""
import argparse
import ctypes
import ctypes.util
import struct
import sys

import cbor2

PROTOCOL = 1
NNG_FLAG_ALLOC = 1
NNG_OPT_RECVTIMEO = b"recv-timeout"
NNG_OPT_SENDTIMEO = b"send-timeout"


class _Socket(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32)]


def _load_nng():
    lib = ctypes.CDLL(ctypes.util.find_library("nng") or "libnng.so.1")
    lib.nng_req0_open.argtypes = [ctypes.POINTER(_Socket)]
    lib.nng_dial.argtypes = [_Socket, ctypes.c_char_p, ctypes.c_void_p,
                             ctypes.c_int]
    lib.nng_socket_set_ms.argtypes = [_Socket, ctypes.c_char_p,
                                      ctypes.c_int32]
    lib.nng_send.argtypes = [_Socket, ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_int]
    lib.nng_recv.argtypes = [_Socket, ctypes.c_void_p,
                             ctypes.POINTER(ctypes.c_size_t), ctypes.c_int]
    lib.nng_free.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.nng_free.restype = None
    lib.nng_close.argtypes = [_Socket]
    lib.nng_strerror.argtypes = [ctypes.c_int]
    lib.nng_strerror.restype = ctypes.c_char_p
    return lib


class AgentError(Exception):
    """The agent answered {ok: false, error: {code, message}}."""

    def __init__(self, code, message):
        super().__init__("%s (%s)" % (message, code))
        self.code = code
        self.message = message


class Agent:
    """One REQ connection to the agent's socket; one request at a time."""

    def __init__(self, socket_path, timeout_ms=30000):
        self._nng = _load_nng()
        self._sock = _Socket()
        self._check(self._nng.nng_req0_open(ctypes.byref(self._sock)),
                    "nng_req0_open")
        for opt in (NNG_OPT_RECVTIMEO, NNG_OPT_SENDTIMEO):
            self._check(self._nng.nng_socket_set_ms(self._sock, opt,
                                                    timeout_ms), opt)
        url = ("ipc://" + socket_path).encode()
        self._check(self._nng.nng_dial(self._sock, url, None, 0),
                    "connect to " + socket_path)

    def _check(self, rv, what):
        if rv != 0:
            raise OSError("%s: %s" % (what,
                                      self._nng.nng_strerror(rv).decode()))

    def close(self):
        self._nng.nng_close(self._sock)

    def call(self, op, **fields):
        """Sends {v, op, **fields}; returns the reply map or raises."""
        request = cbor2.dumps(dict(v=PROTOCOL, op=op, **fields))
        self._check(self._nng.nng_send(self._sock, request, len(request), 0),
                    op)
        buf = ctypes.c_void_p()
        size = ctypes.c_size_t()
        self._check(self._nng.nng_recv(self._sock, ctypes.byref(buf),
                                       ctypes.byref(size), NNG_FLAG_ALLOC),
                    op)
        try:
            reply = cbor2.loads(ctypes.string_at(buf, size.value))
        finally:
            self._nng.nng_free(buf, size)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise AgentError(err.get("code", "?"), err.get("message", ""))
        return reply


def floats(values):
    """A vector as the protocol likes it best: little-endian float32."""
    return struct.pack("<%df" % len(values), *values)


def unfloats(data):
    return list(struct.unpack("<%df" % (len(data) // 4), data))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default="/run/edgesync/agent.sock")
    ap.add_argument("--collection", default="example")
    ap.add_argument("--drop", action="store_true",
                    help="drop the collection at the end")
    args = ap.parse_args()

    try:
        agent = Agent(args.socket)
    except OSError as e:
        print("client.py: %s (is the agent running?)" % e, file=sys.stderr)
        return 1
    try:
        pong = agent.call("ping")
        print("agent %s, protocol %d, at most %d vectors per insert"
              % (pong["version"], pong["protocol"], pong["max_batch"]))

        name = args.collection
        try:
            agent.call("collection.create", name=name, dim=4, metric="l2")
        except AgentError as e:
            if e.code != "exists":
                raise
            agent.call("collection.drop", name=name)
            agent.call("collection.create", name=name, dim=4, metric="l2")
        print("created collection %r (dim 4, l2)" % name)

        # Vectors as one byte string of n x dim little-endian float32 ...
        points = {1: [0.0, 0.0, 0.0, 0.0], 2: [1.0, 0.0, 0.0, 0.0],
                  3: [0.0, 2.0, 0.0, 0.0], 4: [0.0, 0.0, 3.0, 0.0]}
        ids = list(points)
        blob = b"".join(floats(points[i]) for i in ids)
        r = agent.call("insert", collection=name, ids=ids, vectors=blob)
        # ... or as arrays of numbers, which is handy but bigger.
        r2 = agent.call("insert", collection=name, ids=[5],
                        vectors=[[1.0, 1.0, 1.0, 1.0]])
        print("inserted %d vectors (durable now)" % (r["count"] + r2["count"]))

        query = [0.9, 0.1, 0.0, 0.0]
        hits = agent.call("search", collection=name, vector=floats(query),
                          k=3)
        print("nearest to %s:" % query)
        for id_, dist in zip(hits["ids"], hits["distances"]):
            print("  id %d  distance %.4f" % (id_, dist))

        got = agent.call("get", collection=name, id=3)
        print("vector 3 is %s" % unfloats(got["vector"]))

        info = agent.call("collection.info", name=name)["collection"]
        print("collection %r: %d vectors, %d segments"
              % (info["name"], info["vectors"], info["segments"]))

        try:
            agent.call("get", collection=name, id=999)
        except AgentError as e:
            print("asking for id 999: %s says %r" % (e.code, e.message))

        if args.drop:
            agent.call("collection.drop", name=name)
            print("dropped collection %r" % name)
    except (AgentError, OSError) as e:
        print("client.py: %s" % e, file=sys.stderr)
        return 1
    finally:
        agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
