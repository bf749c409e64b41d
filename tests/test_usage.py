"""`Usage` refuses figures that cannot be right, and converts provider conventions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate import InvalidUsageError, Settings, Usage
from spendgate.testing import FakeClock
from spendgate.usage import MAX_COUNT


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": True}, "output_tokens"),
        ({"input_tokens": 1.5}, "input_tokens"),
        ({"input_tokens": MAX_COUNT + 1}, "input_tokens"),
        ({"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 5}, "cache_read_tokens"),
        ({"output_tokens": 3, "reasoning_tokens": 4}, "reasoning_tokens"),
        ({"input_tokens": 3, "input_audio_tokens": 2, "input_image_tokens": 2}, "input_audio_tokens"),
        ({"audio_seconds": Decimal("-1")}, "audio_seconds"),
        ({"processing_seconds": float("nan")}, "processing_seconds"),
        ({"processing_seconds": "soon"}, "processing_seconds"),
        ({"audio_seconds": [1]}, "audio_seconds"),
    ],
)
def test_impossible_usage_is_refused(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidUsageError) as exc:
        Usage(**kwargs)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_numbers_are_normalized() -> None:
    u = Usage(processing_seconds=1.25, audio_seconds=3)  # type: ignore[arg-type]
    assert u.processing_seconds == Decimal("1.25") and isinstance(u.audio_seconds, Decimal)


def test_anthropic_cache_tokens_move_inside_input() -> None:
    u = Usage.from_anthropic(
        input_tokens=100, output_tokens=20, cache_read_input_tokens=1000, cache_creation_input_tokens=50
    )
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens) == (1150, 1000, 50)
    assert u.total_tokens == 1170
    with pytest.raises(InvalidUsageError, match="cache_read_input_tokens"):
        Usage.from_anthropic(input_tokens=1, output_tokens=0, cache_read_input_tokens=-1)


def test_dict_round_trip_and_unknown_keys() -> None:
    u = Usage(input_tokens=5, output_tokens=2, audio_seconds=Decimal("1.5"))
    assert u.to_dict() == {"input_tokens": 5, "output_tokens": 2, "audio_seconds": "1.5"}
    assert Usage.from_dict(u.to_dict()) == u
    with pytest.raises(InvalidUsageError) as exc:
        Usage.from_dict({"input_tokens": 1, "prompt_tokens": 3})
    assert exc.value.field == "prompt_tokens"


counts = st.integers(min_value=0, max_value=10**6)


@given(counts, counts, counts, counts)
def test_addition_is_fieldwise_and_stays_valid(a_in: int, a_out: int, b_in: int, b_out: int) -> None:
    a = Usage(input_tokens=a_in, output_tokens=a_out, cache_read_tokens=a_in // 2)
    b = Usage(input_tokens=b_in, output_tokens=b_out, reasoning_tokens=b_out // 3)
    s = a + b
    assert s.input_tokens == a_in + b_in and s.output_tokens == a_out + b_out
    assert s.cache_read_tokens == a_in // 2 and s.reasoning_tokens == b_out // 3
    assert (a + b) == (b + a)


def test_add_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        _ = Usage() + 1


def test_fake_clock() -> None:
    clock = FakeClock(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    assert clock.advance(minutes=2) == datetime(2026, 2, 1, 0, 1, tzinfo=UTC)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2027
    assert clock.advance(timedelta(days=1)).day == 2
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        clock.set(datetime(2026, 1, 1))


def test_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDGATE_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("SPENDGATE_CHARS_PER_TOKEN", '{"anthropic": 3.2}')
    s = Settings()
    assert s.database_url == "sqlite:///from-env.db" and s.chars_per_token == {"anthropic": 3.2}
    assert Settings(exchange_rates={"eur": Decimal("0.9")}).exchange_rates == {"EUR": Decimal("0.9")}
    with pytest.raises(ValueError, match="must be a URL"):
        Settings(database_url="usage.db")
    with pytest.raises(ValueError, match="positive"):
        Settings(exchange_rates={"EUR": Decimal("0")})
    with pytest.raises(ValueError, match="extra"):
        Settings(databse_url="sqlite:///typo.db")  # type: ignore[call-arg]


def test_settings_from_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "spendgate.toml"
    toml.write_text(
        'database_url = "sqlite:///from-file.db"\nport = 9000\n\n[upstreams.local]\nbase_url = "http://127.0.0.1:11434/v1"\n'
        'models = ["llama"]\n'
    )
    monkeypatch.delenv("SPENDGATE_DATABASE_URL", raising=False)
    monkeypatch.setenv("SPENDGATE_CONFIG", str(toml))
    monkeypatch.setenv("SPENDGATE_PORT", "9100")  # the environment wins over the file
    s = Settings()
    assert s.database_url == "sqlite:///from-file.db" and s.port == 9100
    assert s.upstreams["local"].models == ["llama"] and s.upstreams["local"].wire == "openai"
    yaml_file = tmp_path / "spendgate.yaml"
    yaml_file.write_text("counters_url: redis://127.0.0.1:6379/0\nqueue_enabled: true\n")
    monkeypatch.setenv("SPENDGATE_CONFIG", str(yaml_file))
    assert Settings().queue_enabled is True
    monkeypatch.setenv("SPENDGATE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="no such file"):
        Settings()
