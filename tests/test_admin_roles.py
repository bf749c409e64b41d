"""Every admin and metering route against every role: none (401), member, viewer and admin (table-driven)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.pricing import PriceOverride
from spendgate.server import Team, create_app
from test_admin_support import Env, open_env

LIMIT = "user:bob|cost|day|UTC"


def _prepare(env: Env) -> None:
    """Objects the rows act on (each row gets a fresh app)."""
    env.ids.put_team(Team(team_id="solo"), actor="setup", create=True)
    env.meter.set_limit(scope="user", scope_id="bob", amount="5")
    env.meter.add_grant(LIMIT, "1", id="g1")
    env.meter.emergency_stop("user", "bob", reason="runaway loop")
    env.meter.set_rate_limit("user", "bob", rpm=10)
    env.meter.add_price_override(PriceOverride(provider="selfhost", model="llama", effective_from=date(2026, 1, 1),
                                               input=Decimal(1), output=Decimal(2)))  # fmt: skip


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    path: str
    member: int
    viewer: int
    admin: int
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}{'?' + '&'.join(self.params) if self.params else ''}"


def _key_id(token: str) -> str:
    return token.split("-")[2]


U = "/api/v1"
PRICE = {"provider": "selfhost", "model": "llama", "effective_from": "2026-02-01", "input": "1", "output": "3"}
ROWS = [
    Row("POST", f"{U}/users", f"{U}/users", 403, 403, 201, {"user_id": "new"}),
    Row("GET", f"{U}/users", f"{U}/users", 403, 200, 200),
    Row("GET", f"{U}/users/{{user_id}}", f"{U}/users/ann", 200, 200, 200),
    Row("GET", f"{U}/users/{{user_id}}", f"{U}/users/bob", 403, 200, 200),
    Row("PATCH", f"{U}/users/{{user_id}}", f"{U}/users/bob", 403, 403, 200, {"tier": "free"}),
    Row("DELETE", f"{U}/users/{{user_id}}", f"{U}/users/bob", 403, 403, 204),
    Row("POST", f"{U}/teams", f"{U}/teams", 403, 403, 201, {"team_id": "ops"}),
    Row("GET", f"{U}/teams", f"{U}/teams", 403, 200, 200),
    Row("GET", f"{U}/teams/{{team_id}}", f"{U}/teams/ml", 403, 200, 200),
    Row("PATCH", f"{U}/teams/{{team_id}}", f"{U}/teams/ml", 403, 403, 200, {"name": "ML"}),
    Row("DELETE", f"{U}/teams/{{team_id}}", f"{U}/teams/solo", 403, 403, 204),
    Row("POST", f"{U}/keys", f"{U}/keys", 403, 403, 201, {"role": "viewer"}),
    Row("GET", f"{U}/keys", f"{U}/keys", 200, 200, 200),
    Row("GET", f"{U}/keys", f"{U}/keys", 403, 200, 200, params={"user_id": "bob"}),
    Row("GET", f"{U}/keys/{{key_id}}", f"{U}/keys/{{member}}", 200, 200, 200),
    Row("GET", f"{U}/keys/{{key_id}}", f"{U}/keys/{{other}}", 404, 200, 200),
    Row("POST", f"{U}/keys/{{key_id}}/revoke", f"{U}/keys/{{other}}/revoke", 403, 403, 200),
    Row("POST", f"{U}/keys/{{key_id}}/rotate", f"{U}/keys/{{other}}/rotate", 404, 403, 201),
    Row("POST", f"{U}/limits", f"{U}/limits", 403, 403, 201, {"scope": "user:ann", "amount": "1"}),
    Row("GET", f"{U}/limits", f"{U}/limits", 403, 200, 200),
    Row("GET", f"{U}/limits/{{limit_id:path}}", f"{U}/limits/{LIMIT}", 403, 200, 200),
    Row("PATCH", f"{U}/limits/{{limit_id:path}}", f"{U}/limits/{LIMIT}", 403, 403, 200, {"amount": "6"}),
    Row("DELETE", f"{U}/limits/{{limit_id:path}}", f"{U}/limits/{LIMIT}", 403, 403, 204),
    Row("POST", f"{U}/limits/{{limit_id:path}}/grants", f"{U}/limits/{LIMIT}/grants", 403, 403, 201, {"amount": "2"}),
    Row("GET", f"{U}/limits/{{limit_id:path}}/grants", f"{U}/limits/{LIMIT}/grants", 403, 200, 200),
    Row("DELETE", f"{U}/grants/{{grant_id:path}}", f"{U}/grants/g1", 403, 403, 204),
    Row("POST", f"{U}/emergency-stops", f"{U}/emergency-stops", 403, 403, 201, {"reason": "incident"}),
    Row("GET", f"{U}/emergency-stops", f"{U}/emergency-stops", 403, 200, 200),
    Row("DELETE", f"{U}/emergency-stops/{{scope:path}}", f"{U}/emergency-stops/user:bob", 403, 403, 204),
    Row("POST", f"{U}/rate-limits", f"{U}/rate-limits", 403, 403, 201, {"scope": "user:ann", "rpm": 5}),
    Row("GET", f"{U}/rate-limits", f"{U}/rate-limits", 403, 200, 200),
    Row("DELETE", f"{U}/rate-limits/{{rate_id:path}}", f"{U}/rate-limits/rate|user:bob", 403, 403, 204),
    Row("POST", f"{U}/prices", f"{U}/prices", 403, 403, 201, PRICE),
    Row("GET", f"{U}/prices", f"{U}/prices", 403, 200, 200),
    Row("GET", f"{U}/prices/{{price_id:path}}", f"{U}/prices/selfhost/llama@2026-01-01", 403, 200, 200),
    Row("GET", f"{U}/usage/summary", f"{U}/usage/summary", 200, 200, 200),
    Row("GET", f"{U}/usage/summary", f"{U}/usage/summary", 403, 200, 200, params={"user_id": "bob"}),
    Row("GET", f"{U}/usage/timeseries", f"{U}/usage/timeseries", 200, 200, 200),
    Row("GET", f"{U}/usage/breakdown", f"{U}/usage/breakdown", 200, 200, 200, params={"by": "user"}),
    Row("GET", f"{U}/usage/projection", f"{U}/usage/projection", 200, 200, 200),
    Row("GET", f"{U}/usage/forecast", f"{U}/usage/forecast", 200, 200, 200),
    Row("GET", f"{U}/usage/forecast", f"{U}/usage/forecast", 403, 200, 200, params={"user_id": "bob"}),
    Row("GET", f"{U}/projection", f"{U}/projection", 200, 200, 200),
    Row("GET", f"{U}/anomalies", f"{U}/anomalies", 200, 200, 200),
    Row("GET", f"{U}/anomalies", f"{U}/anomalies", 403, 200, 200, params={"scope": "global"}),
    Row("POST", f"{U}/anomalies/detect", f"{U}/anomalies/detect", 403, 403, 200),
    Row("GET", f"{U}/recommendations", f"{U}/recommendations", 200, 200, 200),
    Row("GET", f"{U}/recommendations", f"{U}/recommendations", 403, 200, 200, params={"user_id": "bob"}),
    Row("GET", f"{U}/usage/export", f"{U}/usage/export", 200, 200, 200, params={"format": "csv"}),
    Row("GET", f"{U}/usage/export", f"{U}/usage/export", 403, 200, 200, params={"user_id": "bob"}),
    Row("GET", f"{U}/export", f"{U}/export", 200, 200, 200, params={"format": "json"}),
    Row("GET", f"{U}/export", f"{U}/export", 403, 200, 200, params={"user_id": "bob"}),
    Row("GET", f"{U}/users/{{user_id}}/usage", f"{U}/users/ann/usage", 200, 200, 200),
    Row("GET", f"{U}/users/{{user_id}}/export", f"{U}/users/ann/export", 200, 200, 200),
    Row("GET", f"{U}/users/{{user_id}}/export", f"{U}/users/bob/export", 403, 200, 200),
    Row("POST", f"{U}/users/{{user_id}}/erase", f"{U}/users/bob/erase", 403, 403, 200),
    Row("GET", f"{U}/users/{{user_id}}/usage", f"{U}/users/bob/usage", 403, 200, 200),
    Row("GET", f"{U}/budgets/status", f"{U}/budgets/status", 200, 200, 200),
    Row("GET", f"{U}/budgets/status", f"{U}/budgets/status", 403, 200, 200, params={"user_id": "bob"}),
    Row("GET", f"{U}/audit", f"{U}/audit", 403, 403, 200),
    Row("GET", f"{U}/audit/verify", f"{U}/audit/verify", 403, 403, 200),
    Row("GET", f"{U}/me", f"{U}/me", 200, 200, 200),
    Row("POST", f"{U}/authorize", f"{U}/authorize", 200, 403, 200, {"provider": "openai", "model": "gpt-4o"}),
    Row("POST", f"{U}/settle", f"{U}/settle", 404, 403, 404, {"reservation_id": "rsv_x", "usage": {}}),
    Row("POST", f"{U}/release", f"{U}/release", 404, 403, 404, {"reservation_id": "rsv_x"}),
    Row("POST", f"{U}/events", f"{U}/events", 200, 403, 200, {"events": []}),
    Row("GET", f"{U}/analytics/summary", f"{U}/analytics/summary", 200, 200, 200),
    Row("GET", f"{U}/analytics/summary", f"{U}/analytics/summary", 403, 200, 200, params={"user_id": "bob"}),
    Row("GET", f"{U}/analytics/breakdown", f"{U}/analytics/breakdown", 200, 200, 200, params={"by": "user"}),
    Row("GET", f"{U}/analytics/top-users", f"{U}/analytics/top-users", 200, 200, 200),
    Row("GET", f"{U}/analytics/top-models", f"{U}/analytics/top-models", 200, 200, 200),
    Row("GET", f"{U}/analytics/timeseries", f"{U}/analytics/timeseries", 200, 200, 200),
    Row("GET", f"{U}/analytics/heatmap", f"{U}/analytics/heatmap", 200, 200, 200),
    Row("GET", f"{U}/analytics/efficiency", f"{U}/analytics/efficiency", 200, 200, 200),
    Row("GET", f"{U}/alerts", f"{U}/alerts", 403, 200, 200),
    Row("GET", f"{U}/alerts/{{alert_id}}", f"{U}/alerts/alt_none", 403, 404, 404),
    Row("POST", f"{U}/alerts/{{alert_id}}/ack", f"{U}/alerts/alt_none/ack", 403, 403, 404),
    Row("POST", f"{U}/alerts/{{alert_id}}/resolve", f"{U}/alerts/alt_none/resolve", 403, 403, 404),
    Row("GET", f"{U}/alerts/{{alert_id}}/deliveries", f"{U}/alerts/alt_none/deliveries", 403, 404, 404),
    Row("GET", f"{U}/alert-rules", f"{U}/alert-rules", 403, 200, 200),
    Row(
        "POST",
        f"{U}/alert-rules",
        f"{U}/alert-rules",
        403,
        403,
        201,
        {"name": "new", "type": "error_rate", "threshold": "0.2"},
    ),
    Row("GET", f"{U}/alert-rules/{{name}}", f"{U}/alert-rules/budget-threshold", 403, 200, 200),
    Row(
        "PUT",
        f"{U}/alert-rules/{{name}}",
        f"{U}/alert-rules/budget-threshold",
        403,
        403,
        200,
        {"type": "budget_threshold", "threshold": "0.6"},
    ),
    Row("DELETE", f"{U}/alert-rules/{{name}}", f"{U}/alert-rules/budget-threshold", 403, 403, 204),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_route_answers_each_role(row: Row, tmp_path: Path) -> None:
    with open_env(tmp_path) as env:
        _prepare(env)
        path = row.path.format(member=_key_id(env.tokens["member"]), other=_key_id(env.tokens["other"]))
        for role, expected in (("none", 401), ("member", row.member), ("viewer", row.viewer), ("admin", row.admin)):
            answer = env.call(row.method, path, None if role == "none" else role, json=row.body, params=row.params)
            assert answer.status_code == expected, (role, answer.text)
            if expected >= 400:
                error = answer.json()["error"]
                assert error["type"] in ("authentication_error", "permission_error", "not_found",
                                         "reservation_not_found"), error  # fmt: skip
                assert error["message"]


def test_the_table_covers_every_api_route() -> None:
    paths = create_app().openapi()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() if path.startswith("/api/v1") for method in ops}
    assert routes == {(row.method, row.route.replace(":path", "")) for row in ROWS}


def test_every_api_route_documents_a_summary_and_its_errors() -> None:
    paths = create_app().openapi()["paths"]
    api = {path: ops for path, ops in paths.items() if path.startswith("/api/v1")}
    assert len(api) >= 25
    for path, operations in api.items():
        for method, op in operations.items():
            assert op.get("summary"), (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)
            assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
