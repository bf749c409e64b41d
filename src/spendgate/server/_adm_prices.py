"""Admin API: price overrides. A price is never edited in place: each create adds a new dated version."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from spendgate.pricing import PriceOverride
from spendgate.server._adm_common import Viewer, actor_of, errors, not_found
from spendgate.server._deps import Admin, ServicesDep
from spendgate.server._errors import ApiError

__all__ = ["PriceCreate", "router"]

router = APIRouter(prefix="/prices", tags=["prices"])

_PerMillion = Field(default=None, description="USD per million tokens, as an exact decimal string")


class PriceCreate(BaseModel):
    """One price version (see docs/pricing.md: fields, units, tiers); it applies from ``effective_from`` on."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1, description="Exact name or a pattern with '*'")
    effective_from: str = Field(description="A date (midnight UTC) or an ISO 8601 datetime")
    input: Decimal | None = _PerMillion
    output: Decimal | None = _PerMillion
    cache_read: Decimal | None = _PerMillion
    cache_write: Decimal | None = _PerMillion
    reasoning: Decimal | None = _PerMillion
    per_request: Decimal | None = Field(default=None, description="USD per request")
    minimum_charge: Decimal | None = Field(default=None, description="USD, the least one request costs")
    per_second: Decimal | None = Field(default=None, description="USD per second of audio or compute")
    context_tiers: list[dict[str, Any]] | None = None
    volume_tiers: list[dict[str, Any]] | None = None
    time_of_day: list[dict[str, Any]] | None = None
    service_tier: str | None = None
    currency: str = "USD"
    note: str = ""
    id: str | None = None


def _find(overrides: list[PriceOverride], price_id: str) -> PriceOverride | None:
    return next((o for o in overrides if o.id == price_id), None)


@router.post(
    "",
    status_code=201,
    summary="Add a price version (never edits an existing one)",
    responses=errors(400, 409),
)
def create_price(body: PriceCreate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    override = PriceOverride.from_mapping(body.model_dump(mode="json", exclude_none=True))
    known = svc.meter.prices.overrides()
    if _find(known, override.id) is not None or any(o.version_key == override.version_key for o in known):
        raise ApiError(
            409,
            "conflict",
            f"{override.provider}/{override.model} already has this price version ({override.id}); prices are"
            " never edited in place: add a new version with a later effective_from",
        )
    svc.meter.add_price_override(override)
    mapping = override.to_mapping()
    svc.meter.store.control.audit(actor_of(principal), "price_override.create", f"price_override:{override.id}",
                                  {"after": mapping})  # fmt: skip
    return mapping


@router.get("", summary="List price versions (admin, viewer)", responses=errors())
def list_prices(
    _: Viewer, svc: ServicesDep, provider: str | None = None, model: str | None = None
) -> list[dict[str, Any]]:
    return [o.to_mapping() for o in svc.meter.prices.overrides(provider, model)]


@router.get("/{price_id:path}", summary="Get one price version (admin, viewer)", responses=errors(404))
def get_price(price_id: str, _: Viewer, svc: ServicesDep) -> dict[str, Any]:
    found = _find(svc.meter.prices.overrides(), price_id)
    if found is None:
        raise not_found("price version", price_id)
    return found.to_mapping()
