"""Schemathesis over the service's OpenAPI schema: no 5xx, and answers that conform to the schema."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.specs.openapi.checks as openapi_checks
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import checks

from spendgate import Settings
from spendgate.server import create_app
from spendgate.settings import Upstream
from spendgate.testing import FakeUpstream

MASTER = "fuzz-master-key-0123456789abcdef"
# Every answer must be a documented status with a documented body and content type. Not checked:
# "schema-valid data is accepted": the API validates more than its schema says (e.g. a model name must
# be one some upstream serves), and answers such data with a documented 400 naming the field.
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
]
KEY_ENV = "SPENDGATE_FUZZ_UPSTREAM_KEY"
os.environ.setdefault(KEY_ENV, "sk-fuzz-upstream")
_fake = FakeUpstream().start()  # module level: the schema below needs the app, the app its upstreams
_tmp = Path(tempfile.mkdtemp(prefix="spendgate-fuzz-"))
_settings = Settings(
    database_url=f"sqlite:///{_tmp / 'fuzz.db'}",
    master_key=MASTER,  # type: ignore[arg-type]
    upstreams={
        "openai": Upstream(base_url=_fake.openai_base_url, api_key_env=KEY_ENV, models=["gpt-", "text-embedding-"]),
        "anthropic": Upstream(
            base_url=_fake.anthropic_base_url, api_key_env=KEY_ENV, wire="anthropic", models=["claude"]
        ),
    },
)
app = create_app(_settings)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def running() -> Iterator[None]:
    """Run the app's lifespan once (its services live on the app); stop the fake upstream at the end."""
    try:
        with TestClient(app):
            yield
    finally:
        _fake.stop()


@schema.parametrize()
@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_conforming_answers(case: Any) -> None:  # a schemathesis.Case
    response = case.call(headers={"Authorization": f"Bearer {MASTER}"})
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    assert response.status_code != 401, "the master key is always valid: the fuzzing must reach the routes"
    case.validate_response(response, checks=CHECKS)
