"""Read what token formulas need from media bytes: image dimensions and WAV durations.

Pure Python, header only: PNG, JPEG, GIF and WebP sizes, WAV durations, base64 data URLs. Nothing
here raises on garbage; an unrecognised or truncated input gives None and the caller falls back to
the provider's worst case.
"""

from __future__ import annotations

import base64
import binascii
import struct
from decimal import Decimal

__all__ = ["decode_base64", "image_size", "parse_data_url", "wav_seconds"]

#: Base64 characters decoded first when only a header is needed (JPEG EXIF blocks can be ~64 KiB).
HEADER_CHARS = 96 * 1024

# JPEG start-of-frame markers carry the size; 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG, JPEG, GIF or WebP image from its header, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return _valid(width, height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return _valid(width, height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _valid(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    end = len(data)
    while pos < end:
        if data[pos] != 0xFF:
            return None
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            return None
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA) or pos + 2 > end:  # end of image or start of scan before any frame
            return None
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if marker in _SOF_MARKERS:
            if pos + 7 > end:
                return None
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return _valid(width, height)
        if length < 2:
            return None
        pos += length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return _valid(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return (width, height)
    return None


def wav_seconds(data: bytes) -> Decimal | None:
    """Duration of a RIFF/WAVE file from its ``fmt `` and ``data`` chunks, or None."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    byte_rate = 0
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = pos + 8
        if chunk_id == b"fmt " and body + 12 <= len(data):
            (byte_rate,) = struct.unpack("<I", data[body + 8 : body + 12])
        elif chunk_id == b"data":
            if byte_rate <= 0:
                return None
            available = len(data) - body
            size = available if size in (0, 0xFFFFFFFF) or size > available else size  # streamed or truncated
            return Decimal(size) / Decimal(byte_rate)
        pos = body + size + (size & 1)
    return None


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64_payload)`` of a ``data:<type>;base64,<payload>`` URL, or None."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    return header[5:].split(";", 1)[0].lower(), payload


def decode_base64(payload: str, limit: int | None = None) -> bytes | None:
    """Decode ``payload`` (only its first ``limit`` characters, rounded down to a multiple of 4), or None."""
    if limit is not None and len(payload) > limit:
        payload = payload[: limit - limit % 4]
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None
