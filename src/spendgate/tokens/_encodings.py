"""OpenAI's BPE encodings, built offline from the data files that ship with ``bpe-openai``.

tiktoken downloads its rank files on first use, which fails without internet. The ``bpe-openai``
wheel ships the same files (gzipped); we check the SHA-256 of the decompressed bytes against the
hashes tiktoken itself pins, parse the ``base64token rank`` lines and construct a
:class:`tiktoken.Encoding` with the pattern and special tokens of ``tiktoken_ext/openai_public.py``.

Each encoding is loaded lazily, at most once per process, under a lock; nothing happens at import.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import importlib.util
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tiktoken

from spendgate.errors import TokenizationError

__all__ = ["ENCODING_NAMES", "Bpe", "encoding_name_for_model", "get_encoding", "load_ranks", "normalize_model"]

_DATA_PACKAGE = "bpe_openai"

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = "|".join(
    [
        r"""'(?i:[sdmt]|ll|ve|re)""",
        r"""[^\r\n\p{L}\p{N}]?+\p{L}++""",
        r"""\p{N}{1,3}+""",
        r""" ?[^\s\p{L}\p{N}]++[\r\n]*+""",
        r"""\s++$""",
        r"""\s*[\r\n]""",
        r"""\s+(?!\S)""",
        r"""\s""",
    ]
)


@dataclass(frozen=True, slots=True)
class _Spec:
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


_SPECS: dict[str, _Spec] = {
    "o200k_base": _Spec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str=_O200K_PATTERN,
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _Spec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=_CL100K_PATTERN,
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

#: The encodings this package can build offline.
ENCODING_NAMES: tuple[str, ...] = tuple(sorted(_SPECS))

_loaded: dict[str, tiktoken.Encoding] = {}
_lock = threading.Lock()


def load_ranks(name: str, data: bytes) -> dict[bytes, int]:
    """Parse the decompressed ``.tiktoken`` file ``data`` of encoding ``name`` after checking its hash."""
    spec = _spec(name)
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise TokenizationError(
            f"the {name} rank file is corrupt: sha256 {digest} does not match the expected {spec.sha256}"
            " (reinstall bpe-openai)"
        )
    ranks: dict[bytes, int] = {}
    try:
        for line in data.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
    except (ValueError, binascii.Error) as exc:  # pragma: no cover - unreachable once the hash matched
        raise TokenizationError(f"the {name} rank file cannot be parsed: {exc}") from exc
    return ranks


def _data_path(name: str) -> Path:
    """Where the ``bpe-openai`` wheel keeps the rank file of ``name``.

    Found with ``find_spec``, which locates the package without importing it: importing
    ``bpe_openai`` would load every one of its encodings (and warn about a deprecated API).
    """
    spec = importlib.util.find_spec(_DATA_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise FileNotFoundError(f"package {_DATA_PACKAGE!r} is not installed")
    return Path(locations[0]) / "data" / f"{name}.tiktoken.gz"


def _read_data(name: str) -> bytes:
    """The decompressed rank file of ``name`` from the ``bpe-openai`` wheel."""
    try:
        return gzip.decompress(_data_path(name).read_bytes())
    except (OSError, EOFError) as exc:
        raise TokenizationError(
            f"the {name} rank file could not be read from the bpe-openai package ({exc});"
            " install bpe-openai to count OpenAI tokens offline"
        ) from exc


def _spec(name: str) -> _Spec:
    try:
        return _SPECS[name]
    except KeyError:
        raise TokenizationError(f"unknown encoding {name!r}; available: {', '.join(ENCODING_NAMES)}") from None


def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name`` ("o200k_base" or "cl100k_base"), built offline once per process.

    Raises :class:`~spendgate.errors.TokenizationError` when the name is unknown or the data file is
    missing or corrupt.
    """
    encoding = _loaded.get(name)
    if encoding is not None:
        return encoding
    spec = _spec(name)
    with _lock:
        encoding = _loaded.get(name)
        if encoding is None:
            ranks = load_ranks(name, _read_data(name))
            encoding = tiktoken.Encoding(
                name=name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens
            )
            _loaded[name] = encoding
    return encoding


class Bpe:
    """Counts tokens with an OpenAI encoding, loaded on first use.

    ``exact`` is False when the encoding is only a stand-in (an OpenAI model we cannot map); then
    :attr:`method` reads "estimate:o200k_base".
    """

    __slots__ = ("_encode", "encoding_name", "exact", "method")

    def __init__(self, encoding_name: str, *, exact: bool = True) -> None:
        _spec(encoding_name)
        self.encoding_name = encoding_name
        self.exact = exact
        self.method = encoding_name if exact else f"estimate:{encoding_name}"
        self._encode: Callable[[str], list[int]] | None = None

    def __repr__(self) -> str:
        return f"Bpe({self.method!r})"

    def count(self, text: str) -> int:
        """Tokens of ``text``; special-token text such as "<|endoftext|>" counts as ordinary text."""
        encode = self._encode
        if encode is None:
            encode = self._encode = get_encoding(self.encoding_name).encode_ordinary
        return len(encode(text))


# -- model names ------------------------------------------------------------------------------------

# Checked in order; the first matching pattern wins, so the o200k families come before plain "gpt-4".
_MODEL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(ft:)?(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5)([-.:].*)?"), "o200k_base"),
    (re.compile(r"(ft:)?(o1|o3|o4-mini|o4)([-:].*)?"), "o200k_base"),
    (re.compile(r"(ft:)?(gpt-4|gpt-3\.5-turbo|gpt-35-turbo|davinci-002|babbage-002)([-:].*)?"), "cl100k_base"),
    (re.compile(r"text-embedding-(3-small|3-large|ada-002)"), "cl100k_base"),
)


def normalize_model(model: str) -> str:
    """Lower-case ``model`` and drop a routing prefix: "OpenAI/GPT-4o" → "gpt-4o"."""
    return model.strip().lower().rpartition("/")[2]


def encoding_name_for_model(model: str) -> str | None:
    """The OpenAI encoding of ``model`` ("o200k_base", "cl100k_base"), or None for a model we cannot map.

    Case-insensitive; routing prefixes ("openai/gpt-4o") and dated or fine-tuned names
    ("gpt-4o-2024-08-06", "ft:gpt-4o-mini:org::id") are accepted.
    """
    name = normalize_model(model)
    for pattern, encoding in _MODEL_PATTERNS:
        if pattern.fullmatch(name):
            return encoding
    return None
