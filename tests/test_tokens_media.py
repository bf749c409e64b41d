"""Image, audio and video formulas with the providers' worked examples, and header parsing of real
image bytes written by hand."""

from __future__ import annotations

import base64
import math
import struct
import zlib
from decimal import Decimal

import pytest

from spendgate.errors import InvalidUsageError
from spendgate.tokens import (
    TokenCounter,
    anthropic_image_tokens,
    audio_tokens,
    gemini_image_tokens,
    image_size,
    image_tokens,
    openai_image_tokens,
    video_tokens,
)
from spendgate.tokens._probe import decode_base64, parse_data_url, wav_seconds

# -- formulas ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "detail", "model", "expected"),
    [
        (1024, 1024, "high", "gpt-4o", 765),  # OpenAI: 768x768 → 4 tiles → 170*4 + 85
        (2048, 4096, "high", "gpt-4o", 1105),  # → 1024x2048 → 768x1536 → 6 tiles
        (4096, 8192, "low", "gpt-4o", 85),
        (1024, 1024, "auto", "gpt-4o", 765),
        (300, 200, "high", "gpt-4.1", 255),  # one tile, no upscaling
        (300, 200, "auto", "gpt-4o", 85),  # fits one tile: counted as low
        (1024, 1024, "high", "gpt-4o-mini", 2833 + 5667 * 4),
        (1024, 1024, "low", "gpt-4o-mini", 2833),
        (1024, 1024, "high", "o1", 75 + 150 * 4),
        (1024, 1024, "high", "gpt-5", 70 + 140 * 4),
        (1024, 1024, "high", "openai/GPT-4.5-preview", 765),
        (1024, 1024, "high", "gpt-4.1-mini", math.ceil(1024 * 1.62)),  # 32 x 32 patches
        (1800, 2400, "high", "o4-mini", math.ceil(1452 * Decimal("1.72"))),  # OpenAI's example: 1452 patches
        (1800, 2400, "low", "gpt-4.1-nano", math.ceil(1452 * Decimal("2.46"))),  # detail does not apply
    ],
)
def test_openai_images(width: int, height: int, detail: str, model: str, expected: int) -> None:
    assert openai_image_tokens(width, height, detail, model) == expected
    assert openai_image_tokens(height, width, detail, model) == expected  # symmetric, so EXIF rotation is moot


def test_openai_default_model_is_gpt_4o() -> None:
    assert openai_image_tokens(2048, 4096, "high") == 1105


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1000, 1000, 1334),  # Anthropic's table: ~1334 tokens
        (200, 200, 54),  # ~54
        (1092, 1092, 1590),  # ~1590, the largest 1:1 size that is not resized
        (100, 100, 14),
    ],
)
def test_anthropic_images(width: int, height: int, expected: int) -> None:
    assert anthropic_image_tokens(width, height) == expected


def test_anthropic_large_images_are_resized() -> None:
    assert 1590 <= anthropic_image_tokens(5000, 5000) <= 1600
    wide = anthropic_image_tokens(4000, 500)  # long edge capped at 1568 → 1568 x 196
    assert wide == math.ceil(1568 * 196 / 750)


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(384, 384, 258), (100, 50, 258), (385, 100, 258), (1000, 1000, 4 * 258), (768, 1536, 2 * 258)],
)
def test_gemini_images(width: int, height: int, expected: int) -> None:
    assert gemini_image_tokens(width, height) == expected


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "10"])
def test_invalid_sizes(bad: object) -> None:
    for func in (openai_image_tokens, anthropic_image_tokens, gemini_image_tokens):
        with pytest.raises(InvalidUsageError) as caught:
            func(bad, 10)  # type: ignore[arg-type]
        assert caught.value.field == "width"
    with pytest.raises(InvalidUsageError) as caught:
        openai_image_tokens(10, bad)  # type: ignore[arg-type]
    assert caught.value.field == "height"


def test_invalid_detail() -> None:
    with pytest.raises(InvalidUsageError) as caught:
        openai_image_tokens(10, 10, "ultra")
    assert caught.value.field == "detail"


@pytest.mark.parametrize(
    ("provider", "model", "detail", "expected", "exact"),
    [
        ("openai", "gpt-4o", "auto", 85 + 170 * 8, False),  # worst case: 768x2048 → 8 tiles
        ("openai", "gpt-4o", "low", 85, True),  # low does not depend on the size
        ("openai", "gpt-4.1-mini", "auto", math.ceil(1536 * 1.62), False),
        ("anthropic", "claude-opus-4", "auto", 1600, False),
        ("gemini", "gemini-2.5-pro", "auto", 24 * 258, False),
        ("ollama", "llava", "auto", 85 + 170 * 8, False),
    ],
)
def test_unknown_dimensions_use_the_worst_case(
    provider: str, model: str, detail: str, expected: int, exact: bool
) -> None:
    count = image_tokens(provider, model, detail=detail)
    assert (count.image, count.total, count.exact) == (expected, expected, exact)


def test_image_tokens_with_known_size() -> None:
    assert image_tokens("openai", "gpt-4o", 1024, 1024, detail="high").image == 765
    assert image_tokens("anthropic", "claude-3-haiku", 1000, 1000).image == 1334
    gemini_small = image_tokens("google", "gemini-2.0-flash", 200, 200)
    assert (gemini_small.image, gemini_small.exact) == (258, True)
    assert image_tokens("google", "gemini-2.0-flash", 2000, 2000).exact is False  # tiling is not fully documented
    local = image_tokens("ollama", "llava", 1024, 1024, detail="high")
    assert (local.image, local.exact) == (765, False)
    with pytest.raises(InvalidUsageError) as caught:
        image_tokens("openai", "gpt-4o", 1024, None)
    assert caught.value.field == "height"


# -- audio and video ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "seconds", "expected", "exact"),
    [
        ("google", 10, 320, True),
        ("gemini", Decimal("1.5"), 48, True),
        ("openai", 2.5, 25, False),
        ("openai", 0.01, 1, False),  # rounded up
        ("anthropic", 0, 0, False),
    ],
)
def test_audio_tokens(provider: str, seconds: float | Decimal, expected: int, exact: bool) -> None:
    count = audio_tokens(provider, "some-model", seconds)
    assert (count.audio, count.total, count.exact) == (expected, expected, exact)
    assert count.method.startswith("audio:")


def test_video_tokens_count_as_image() -> None:
    count = video_tokens("google", "gemini-2.5-flash", 2)
    assert (count.image, count.total, count.exact, count.method) == (526, 526, True, "video:google:263/s")
    assert video_tokens("openai", "gpt-4o", 1).exact is False


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), Decimal("NaN"), True, "3"])
def test_invalid_durations(bad: object) -> None:
    with pytest.raises(InvalidUsageError) as caught:
        audio_tokens("google", "gemini-2.0-flash", bad)  # type: ignore[arg-type]
    assert caught.value.field == "seconds"


# -- header parsing -----------------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    """A complete, valid PNG (greyscale, 8-bit) of the given size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _gif(width: int, height: int) -> bytes:
    """A valid one-colour GIF89a."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + image + b"\x3b"


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _jpeg(width: int, height: int, exif_bytes: int = 0) -> bytes:
    """A baseline JPEG header (SOI, APP0/JFIF, optional APP1 padding, DQT, SOF0, DHT, SOS) and EOI."""
    app0 = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    app1 = b"".join(_segment(0xE1, b"Exif\x00\x00" + b"\x00" * 60_000) for _ in range(exif_bytes // 60_000))
    dqt = _segment(0xDB, b"\x00" + bytes(range(1, 65)))
    sof = _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    dht = _segment(0xC4, b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00")
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return b"\xff\xd8" + app0 + app1 + b"\xff\xff" + dqt + sof + dht + sos + b"\x00\x00" + b"\xff\xd9"


def _riff(kind: bytes, body: bytes) -> bytes:
    chunk = kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _webp_lossy(width: int, height: int) -> bytes:
    return _riff(b"VP8 ", b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 10)


def _webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    return _riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8)


def _webp_extended(width: int, height: int) -> bytes:
    body = b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _riff(b"VP8X", body)


@pytest.mark.parametrize("make", [_png, _gif, _jpeg, _webp_lossy, _webp_lossless, _webp_extended])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (37, 513), (1024, 768)])
def test_image_size(make: object, width: int, height: int) -> None:
    assert callable(make)
    if make is _png and width * height > 40_000:
        height = 3  # keep the hand-made PNG small; the header is what matters
    assert image_size(make(width, height)) == (width, height)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n\x00\x00",  # truncated PNG
        b"GIF89a\x01",  # truncated GIF
        b"\xff\xd8\xff\xe0\x00",  # truncated JPEG segment
        b"\xff\xd8\xff",  # JPEG: only fill bytes
        b"\xff\xd8\x00\x00",  # JPEG: garbage where a marker should be
        b"\xff\xd8\xff\xe0\x00\x01",  # JPEG: impossible segment length
        b"\xff\xd8" + _segment(0xDA, b"\x00" * 8),  # start of scan before any frame
        b"\xff\xd8\xff\xd0\xff\xd9",  # restart marker, then end of image
        b"\xff\xd8\xff\xc0\x00\x11\x08",  # SOF cut short
        b"RIFF\x00\x00\x00\x00WEBPVP8 \x00",  # truncated WebP
        b"RIFF\x00\x00\x00\x00WEBPXXXX" + b"\x00" * 30,  # unknown WebP chunk
        _png(1, 1).replace(b"\x00\x00\x00\x01\x00\x00\x00\x01", b"\x00" * 8, 1),  # zero width and height
    ],
)
def test_unrecognised_images(data: bytes) -> None:
    assert image_size(data) is None


def test_large_jpeg_header_in_a_data_url() -> None:
    jpeg = _jpeg(1500, 1000, exif_bytes=120_000)  # the frame header lies beyond the first decoded block
    assert image_size(jpeg) == (1500, 1000)
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    message = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url, "detail": "high"}}]}]
    count = TokenCounter().count("openai", "gpt-4o", messages=message)
    assert (count.image, count.exact) == (openai_image_tokens(1500, 1000, "high"), True)


def test_data_urls() -> None:
    assert parse_data_url("data:image/PNG;base64,AAAA") == ("image/png", "AAAA")
    assert parse_data_url("data:text/plain,hello") is None
    assert parse_data_url("https://example.com/a.png") is None
    assert parse_data_url("data:image/png;base64") is None
    assert decode_base64("aGVsbG8gd29ybGQ=") == b"hello world"
    assert decode_base64("aGVsbG8gd29ybGQ=", limit=6) == b"hel"
    assert decode_base64("abc") is None


def _wav(frames: int, rate: int, channels: int = 1, size: int | None = None, with_fmt: bool = True) -> bytes:
    data = b"\x00\x00" * frames * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    chunks = b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk before the audio
    if with_fmt:
        chunks += b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(data) if size is None else size) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_wav_durations() -> None:
    assert wav_seconds(_wav(16_000, 8000)) == Decimal(2)
    assert wav_seconds(_wav(4410, 44_100, channels=2)) == Decimal("0.1")
    assert wav_seconds(_wav(8000, 8000, size=0xFFFFFFFF)) == Decimal(1)  # streamed: size unknown
    assert wav_seconds(_wav(8000, 8000, with_fmt=False)) is None
    assert wav_seconds(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert wav_seconds(_png(1, 1)) is None
