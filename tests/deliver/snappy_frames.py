#!/usr/bin/python3
"""Decodes a Snappy framing-format file to stdout with python-snappy's own framing decoder.

Usage: /usr/bin/python3 snappy_frames.py FILE

tests/deliver/codec_tools_test.cc runs it on what rill's Compress(kSnappy) wrote, so that an
independent decoder checks the stream identifier, the chunk types, the masked CRC-32C of every
chunk and the Snappy blocks. Exit status 0 with the data on stdout, or 1 with the reason on stderr.

Debian 12's python3-snappy 0.5.3 has a broken C _crc32c on Python 3.11 (its "y#" argument parsing
raises SystemError: PY_SSIZE_T_CLEAN macro must be defined), so this replaces the module's
snappy.snappy._crc32c, which _masked_crc32c looks up at each call, with the pure-Python CRC-32C
below. Everything else (framing, chunk types, CRC masking and comparison, decompression) stays the
library's.

On top of the library, it checks the framing format's limit the library does not: no chunk holds
more than 65,536 bytes of uncompressed data. With --chunks it also writes one line per data chunk
to stderr ("compressed N" or "uncompressed N", N its uncompressed bytes).
"""

import struct
import sys

try:
    import snappy
    import snappy.snappy as snappy_impl
except ImportError as e:
    sys.exit("snappy_frames.py: python3-snappy is missing (%s): run scripts/install-deps.sh" % e)

# CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
_POLY = 0x82F63B78


def _make_table():
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# The check values of RFC 3720 (iSCSI) B.4 and of the CRC catalogue, so that a wrong table fails
# here rather than as a "crc mismatch" blamed on the file.
assert crc32c(b"123456789") == 0xE3069283
assert crc32c(bytes(32)) == 0x8A9136AA
assert crc32c(b"\xff" * 32) == 0x62A8AB43

if not hasattr(snappy_impl, "_crc32c") or not hasattr(snappy_impl, "_masked_crc32c"):
    sys.exit("snappy_frames.py: python-snappy has no snappy.snappy._crc32c to replace; "
             "this script knows python3-snappy 0.5.3")
snappy_impl._crc32c = crc32c

_MAX_DATA = 65536


def _varint(data, at):
    """Reads the little-endian base-128 varint at data[at:] (a Snappy block's length)."""
    value = 0
    for shift in range(0, 35, 7):
        if at >= len(data):
            raise ValueError("truncated Snappy block length")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
    raise ValueError("overlong Snappy block length")


def _chunk_sizes(data):
    """Yields (kind, uncompressed bytes) for each data chunk, walking the chunk headers only."""
    at = 0
    while at + 4 <= len(data):
        header = struct.unpack("<L", data[at:at + 4])[0]
        kind, length = header & 0xFF, header >> 8
        body = data[at + 4:at + 4 + length]
        at += 4 + length
        if kind == 0x00:
            yield "compressed", _varint(body, 4)
        elif kind == 0x01:
            yield "uncompressed", length - 4


def main(argv):
    args = [a for a in argv[1:] if a != "--chunks"]
    if len(args) != 1:
        sys.exit("usage: /usr/bin/python3 snappy_frames.py [--chunks] FILE")
    with open(args[0], "rb") as f:
        data = f.read()
    try:
        # An empty file is no stream: the identifier chunk must come first.
        snappy_impl.StreamDecompressor.check_format(data)
        for kind, size in _chunk_sizes(data):
            if size > _MAX_DATA:
                raise ValueError("a %s chunk holds %d bytes, more than %d" % (kind, size, _MAX_DATA))
            if "--chunks" in argv:
                sys.stderr.write("%s %d\n" % (kind, size))
        with open(args[0], "rb") as src:
            snappy.stream_decompress(src=src, dst=sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except Exception as e:  # the library raises UncompressError, and asserts on chunk types
        sys.stderr.write("snappy_frames.py: %s: %s: %s\n" % (args[0], type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
