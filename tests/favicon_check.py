"""What a browser needs of GET /favicon.ico: an ICO whose one image is a 32x32 PNG that
decodes (shared by the gateway's and the admin service's tests)."""

from __future__ import annotations

import struct
import zlib


def read_icon(body: bytes) -> tuple[int, int, bytes]:
    """(width, height, raw RGBA rows) of the ICO's only image; AssertionError when a browser
    could not read it."""
    reserved, kind, count = struct.unpack("<HHH", body[:6])
    assert (reserved, kind, count) == (0, 1, 1)
    width, height, _, _, _, _, size, offset = struct.unpack("<BBBBHHII", body[6:22])
    png = body[offset:offset + size]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == size
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        kind_, data = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind_ + data)
        chunks[kind_] = chunks.get(kind_, b"") + data
        at += 12 + length
    w, h = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert (w, h) == (width, height)
    return w, h, zlib.decompress(chunks[b"IDAT"])
