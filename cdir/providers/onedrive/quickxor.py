"""QuickXorHash, the content hash OneDrive reports for every file (`file.hashes.quickXorHash`).

Written from Microsoft's published description (OneDrive dev center, "QuickXorHash algorithm"):
byte i of the data is XORed into a 160-bit register at bit offset (11 * i) mod 160, rotating
round the end; the data's length, as 64 little-endian bits, is XORed into the last 8 of the
20 bytes. Graph shows the 20 bytes in base64; cdir keeps lowercase hex like every other hash.

Since 11 and 160 are coprime, the offset repeats every 160 bytes: bytes 160 apart land on the
same bits. So `update` XORs whole 160-byte rows into one integer (fast, no loop per byte), and
`digest` spreads the 160 column bytes over the register once.
"""

from __future__ import annotations

import base64

WIDTH = 160  # bits in the register, and bytes in one row of the fold
SHIFT = 11
_MASK = (1 << WIDTH) - 1


class QuickXor:
    """A hashlib-style object: `update(data)` as the bytes stream, then `hexdigest()`."""

    name = "quickxor"

    def __init__(self, data: bytes = b"") -> None:
        self._rows = 0  # XOR of every complete 160-byte row, as a little-endian integer
        self._tail = b""  # the bytes of the row not complete yet
        self._length = 0
        self.update(data)

    def update(self, data: bytes | memoryview) -> None:
        self._length += len(data)
        view = memoryview(data)
        if self._tail:  # complete the pending row first
            need = WIDTH - len(self._tail)
            self._tail += bytes(view[:need])
            view = view[need:]
            if len(self._tail) < WIDTH:
                return
            self._rows ^= int.from_bytes(self._tail, "little")
            self._tail = b""
        whole = len(view) - len(view) % WIDTH
        rows = self._rows
        for start in range(0, whole, WIDTH):
            rows ^= int.from_bytes(view[start : start + WIDTH], "little")
        self._rows = rows
        self._tail = bytes(view[whole:])

    def digest(self) -> bytes:
        columns = (self._rows ^ int.from_bytes(self._tail, "little")).to_bytes(WIDTH, "little")
        register = 0
        for i, byte in enumerate(columns):
            if byte:
                bits = byte << (i * SHIFT % WIDTH)
                register ^= (bits | bits >> WIDTH) & _MASK  # rotate round the end
        register ^= (self._length & 0xFFFF_FFFF_FFFF_FFFF) << (WIDTH - 64)  # the top 8 bytes
        return register.to_bytes(WIDTH // 8, "little")

    def hexdigest(self) -> str:
        return self.digest().hex()


def quickxor_hex(data: bytes) -> str:
    """The lowercase hex QuickXorHash of `data`."""
    return QuickXor(data).hexdigest()


def base64_to_hex(text: str) -> str:
    """Graph's base64 quickXorHash → lowercase hex; "" when it is not valid base64."""
    try:
        return base64.b64decode(text, validate=True).hex()
    except ValueError:
        return ""
