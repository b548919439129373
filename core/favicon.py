"""The icon browsers ask both of our public origins for (`GET /favicon.ico`).

Browsers request /favicon.ico on every page of an origin that names no icon, and a 404 there
is a console error on each of them (the owner page, the inbox, the widget demo). The gateway
and the admin service serve this one icon: an accent-blue rounded square (the owner page's
`--accent`) with a white speech bubble, drawn here as a 32x32 PNG inside an ICO container
(every browser reads that; a bare SVG at /favicon.ico is not read by all), so no binary file
is kept in the repository.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from typing import Final

CONTENT_TYPE: Final = "image/x-icon"
SIZE: Final = 32
_ACCENT: Final = (0x24, 0x57, 0xC5, 0xFF)
_WHITE: Final = (0xFF, 0xFF, 0xFF, 0xFF)
_CLEAR: Final = (0, 0, 0, 0)


def _pixel(x: int, y: int) -> tuple[int, int, int, int]:
    # The square's corners are cut on a radius of 6 pixels.
    r = 6
    cx = min(max(x, r), SIZE - 1 - r)
    cy = min(max(y, r), SIZE - 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return _CLEAR
    bubble = 7 <= x <= 24 and 8 <= y <= 19
    tail = 10 <= x <= 14 and 20 <= y <= 24 and x - 10 <= 24 - y
    return _WHITE if bubble or tail else _ACCENT


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(v for x in range(SIZE) for v in _pixel(x, y))
                    for y in range(SIZE))
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


@lru_cache(maxsize=1)
def icon() -> bytes:
    """The ICO file: one 32x32 image, stored as PNG (ICO allows that since Windows Vista)."""
    png = _png()
    directory = struct.pack("<HHH", 0, 1, 1)  # reserved, type icon, one image
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(png), 6 + 16)
    return directory + entry + png
