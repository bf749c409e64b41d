"""Alerts API: list alerts (firing and recent), acknowledge and resolve them, see their deliveries; manage rules.

Admins and viewers read; only admins change anything (acknowledging included). Members are refused
(alerts name other users' scopes). Every change is written to the audit log. The rules of a fresh
install (the defaults, or the configuration's ``alerting.rules``) are there before the first round.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from spendgate.alerts import Alerting, Rule, alerting_config_of
from spendgate.alerts._model import AlertType, GroupBy, Operator, Severity
from spendgate.alerts._run import install_rules
from spendgate.server._adm_common import Viewer, actor_of, aware, errors, not_found
from spendgate.server._deps import Admin, Services, ServicesDep
from spendgate.server._errors import ApiError

__all__ = ["EscalationBody", "RuleBody", "router"]

router = APIRouter(tags=["alerts"])


class EscalationBody(BaseModel):
    """One escalation level: after this many seconds unacknowledged, notify these channels."""

    model_config = ConfigDict(extra="forbid")
    after_s: int
    channels: list[str]


class RuleBody(BaseModel):
    """A rule (see docs/alerts.md). Omitted fields take the rule defaults; ``metric`` the type's metric."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, description="Required on create; on PUT it must match the path")
    type: AlertType
    threshold: Decimal
    metric: str | None = None
    operator: Operator | None = None
    window_s: int | None = None
    consecutive: int | None = None
    cooldown_s: int | None = None
    severity: Severity | None = None
    channels: list[str] | None = None
    escalation: list[EscalationBody] | None = None
    group_by: GroupBy | None = None
    enabled: bool | None = None
    description: str | None = None

    def rule(self, name: str | None = None) -> Rule:
        """The validated rule (400 naming the offending field)."""
        values: dict[str, Any] = self.model_dump(exclude_none=True)
        if name is not None:
            if self.name is not None and self.name != name:
                raise ApiError(400, "invalid_request_error", "name: must match the rule in the path", field="name")
            values["name"] = name
        if "name" not in values:
            raise ApiError(400, "invalid_request_error", "name: is required", field="name")
        return Rule.from_dict(values)


def _alerting(svc: Services) -> Alerting:
    alerting = Alerting(svc.meter.store, alerting_config_of(svc.settings))
    install_rules(alerting.alerts, alerting.config, svc.meter.clock.now())
    return alerting


def _found(kind: str, object_id: str, value: Any) -> Any:
    if value is None:
        raise not_found(kind, object_id)
    return value


@router.get("/alerts", summary="Alerts, newest first: open ones and recent ones", responses=errors(400))
def list_alerts(
    _: Viewer,
    svc: ServicesDep,
    status: Literal["open", "firing", "acknowledged", "resolved"] | None = None,
    rule: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """``status=open`` is firing or acknowledged; ``since`` filters on when alerts fired."""
    statuses: tuple[str, ...] | None = None
    if status is not None:
        statuses = ("firing", "acknowledged") if status == "open" else (status,)
    found = _alerting(svc).alerts.list_alerts(status=statuses, rule=rule, since=aware("since", since), limit=limit)
    return {"alerts": [alert.to_dict() for alert in found]}


@router.get("/alerts/{alert_id}", summary="One alert", responses=errors(404))
def get_alert(alert_id: str, _: Viewer, svc: ServicesDep) -> dict[str, Any]:
    return dict(_found("alert", alert_id, _alerting(svc).alerts.get(alert_id)).to_dict())


def _change(svc: Services, principal: Any, alert_id: str, action: Literal["acknowledge", "resolve"]) -> dict[str, Any]:
    alerting = _alerting(svc)
    now, actor = svc.meter.clock.now(), actor_of(principal)
    if action == "acknowledge":
        result = alerting.alerts.acknowledge(alert_id, actor, now)
    else:
        result = alerting.resolve(alert_id, actor, now)
    alert, changed = _found("alert", alert_id, result)
    if not changed and alert.status == "resolved":
        raise ApiError(409, "conflict", f"alert {alert_id!r} is already resolved")
    if changed:
        svc.meter.store.control.audit(actor, f"alert.{action}", f"alert:{alert_id}", {"rule": alert.rule})
    return dict(alert.to_dict())


@router.post(
    "/alerts/{alert_id}/ack", summary="Acknowledge an alert (its escalation stops)", responses=errors(404, 409)
)
def acknowledge_alert(alert_id: str, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    """Acknowledging an acknowledged alert changes nothing; a resolved one is a 409."""
    return _change(svc, principal, alert_id, "acknowledge")


@router.post("/alerts/{alert_id}/resolve", summary="Resolve an alert by hand", responses=errors(404, 409))
def resolve_alert(alert_id: str, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    return _change(svc, principal, alert_id, "resolve")


@router.get(
    "/alerts/{alert_id}/deliveries", summary="An alert's notifications and how sending them went", responses=errors(404)
)
def alert_deliveries(alert_id: str, _: Viewer, svc: ServicesDep) -> dict[str, Any]:
    alerts = _alerting(svc).alerts
    _found("alert", alert_id, alerts.get(alert_id))
    return {"deliveries": [d.to_dict() for d in alerts.outbox.deliveries(alert_id=alert_id)]}


@router.get("/alert-rules", summary="Every alert rule", responses=errors())
def list_rules(_: Viewer, svc: ServicesDep) -> dict[str, Any]:
    return {"rules": [stored.to_dict() for stored in _alerting(svc).alerts.rules()]}


@router.post("/alert-rules", status_code=201, summary="Add an alert rule", responses=errors(400, 409))
def create_rule(body: RuleBody, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    rule = body.rule()
    alerts = _alerting(svc).alerts
    if not alerts.create_rule(rule, svc.meter.clock.now()):
        raise ApiError(409, "conflict", f"alert rule {rule.name!r} already exists", field="name")
    actor = actor_of(principal)
    svc.meter.store.control.audit(actor, "alert_rule.create", f"alert_rule:{rule.name}", {"after": rule.to_dict()})
    return dict(_found("alert rule", rule.name, alerts.rule(rule.name)).to_dict())


@router.get("/alert-rules/{name}", summary="One alert rule", responses=errors(404))
def get_rule(name: str, _: Viewer, svc: ServicesDep) -> dict[str, Any]:
    return dict(_found("alert rule", name, _alerting(svc).alerts.rule(name)).to_dict())


@router.put("/alert-rules/{name}", summary="Replace an alert rule", responses=errors(400, 404))
def replace_rule(name: str, body: RuleBody, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    rule = body.rule(name)
    alerts = _alerting(svc).alerts
    before = _found("alert rule", name, alerts.rule(name))
    if not alerts.replace_rule(rule, svc.meter.clock.now()):
        raise not_found("alert rule", name)
    svc.meter.store.control.audit(actor_of(principal), "alert_rule.update", f"alert_rule:{name}",
                                  {"before": before.rule.to_dict(), "after": rule.to_dict()})  # fmt: skip
    return dict(_found("alert rule", name, alerts.rule(name)).to_dict())


@router.delete("/alert-rules/{name}", status_code=204, summary="Delete an alert rule", responses=errors(404))
def delete_rule(name: str, principal: Admin, svc: ServicesDep) -> Response:
    """Its alerts stay, for the record; open ones no longer escalate."""
    alerts = _alerting(svc).alerts
    before = _found("alert rule", name, alerts.rule(name))
    if not alerts.delete_rule(name):
        raise not_found("alert rule", name)
    svc.meter.store.control.audit(actor_of(principal), "alert_rule.delete", f"alert_rule:{name}",
                                  {"before": before.rule.to_dict()})  # fmt: skip
    return Response(status_code=204)
