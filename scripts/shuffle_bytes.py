"""Pack a float-tensor file small enough for the GPU machine's 64 MiB transfer limit, and back.

    python scripts/shuffle_bytes.py enc WIDTH IN OUT.xz   # WIDTH: bytes per value (2 for f16)
    python scripts/shuffle_bytes.py dec IN.xz OUT

xz alone barely shrinks float weights; grouping the k-th byte of every value together (the
"byte shuffle" of Blosc and HDF5) puts the slowly varying exponent bytes side by side, which xz
then compresses (the f16 weights: 46.0 MiB → 38.9 MiB). Lossless: `dec` restores the exact
bytes. Header: the original length (u64 LE) and WIDTH (u8). Standard library only, so it runs
with any python3 on the GPU machine.
"""
import lzma
import struct
import sys


def encode(width: int, data: bytes) -> bytes:
    n = len(data) // width * width
    planes = b"".join(data[k:n:width] for k in range(width))
    return struct.pack("<QB", len(data), width) + planes + data[n:]


def decode(blob: bytes) -> bytes:
    total, width = struct.unpack_from("<QB", blob)
    body = memoryview(blob)[9:]
    n = total // width * width
    plane = n // width
    out = bytearray(total)
    for k in range(width):
        out[k:n:width] = body[k * plane:(k + 1) * plane]
    out[n:] = body[n:]
    return bytes(out)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "enc":
        data = open(sys.argv[3], "rb").read()
        with lzma.open(sys.argv[4], "wb", preset=9) as f:
            f.write(encode(int(sys.argv[2]), data))
    elif len(sys.argv) == 4 and sys.argv[1] == "dec":
        with lzma.open(sys.argv[2], "rb") as f:
            blob = f.read()
        open(sys.argv[3], "wb").write(decode(blob))
    else:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, lzma.LZMAError, struct.error) as e:
        print(f"shuffle_bytes: {e}", file=sys.stderr)
        sys.exit(1)
