"""Request dependencies: the shared services, and the caller's identity and role."""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, field
from typing import Annotated, NoReturn

import anyio.to_thread
from fastapi import Depends, Query, Request

from spendgate.alerts import AuthFailures
from spendgate.meter import Meter
from spendgate.server._auth_guard import AuthGuard
from spendgate.server._errors import ApiError
from spendgate.server._identity import _PREFIX as KEY_PREFIX
from spendgate.server._identity import IdentityStore, Principal
from spendgate.server._ledger_guard import LedgerGuard
from spendgate.server._pii_view import PiiView
from spendgate.settings import Settings

__all__ = [
    "Admin",
    "Caller",
    "PiiViewDep",
    "Reader",
    "Services",
    "ServicesDep",
    "gateway_caller",
    "pii_view",
    "services",
]


@dataclass
class Services:
    """What routes share, built once in the app's lifespan."""

    settings: Settings
    meter: Meter
    identity: IdentityStore
    auth_failures: AuthFailures = field(default_factory=AuthFailures)
    """Refused keys, counted for the ``failed_auth`` alert rules (flushed by the alerting job)."""
    auth_guard: AuthGuard = field(init=False)
    """Locks out client addresses that fail authentication too often (``auth_failure_*`` settings)."""
    ledger_guard: LedgerGuard = field(init=False)
    """Refuses gateway calls for a while after a ledger write failed (``ledger_failure_hold_s``)."""
    pii_view: PiiView = field(init=False)
    """Pseudonyms for answers that must not identify people (``analytics_exclude_pii``, ``?exclude_pii=``)."""

    def __post_init__(self) -> None:
        s = self.settings
        self.auth_guard = AuthGuard(s.auth_failure_limit, s.auth_failure_window_s, s.auth_lockout_s)
        self.ledger_guard = LedgerGuard(s.ledger_failure_hold_s)
        self.pii_view = PiiView.from_settings(s)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def pii_view(
    svc: ServicesDep,
    exclude_pii: Annotated[
        bool, Query(description="Name users by pseudonym; leave out addresses, user agents and metadata.")
    ] = False,
) -> PiiView | None:
    """The request's :class:`PiiView`, or None to show users as they are (``analytics_exclude_pii`` unset)."""
    return svc.pii_view if exclude_pii or svc.settings.analytics_exclude_pii else None


PiiViewDep = Annotated[PiiView | None, Depends(pii_view)]


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def _address(request: Request) -> str | None:
    client = request.client
    return client.host if client else None


def _refuse(request: Request, svc: Services, message: str) -> NoReturn:
    """401, counting the refusal against the client's address (security alerts and the lockout)."""
    address, now = _address(request), svc.meter.clock.now()
    svc.auth_failures.record(address, now)
    svc.auth_guard.failed(address, now.timestamp())
    raise ApiError(401, "authentication_error", message)


def _check_lockout(request: Request, svc: Services) -> None:
    """429 for an address locked out after too many refused keys (its key is not even looked at)."""
    if not svc.auth_guard.active:
        return
    wait = svc.auth_guard.retry_after(_address(request), svc.meter.clock.now().timestamp())
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429, "rate_limit_error", f"too many refused API keys from this address: retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )  # fmt: skip


def _required_token(request: Request, svc: Services) -> str:
    token = _token(request)
    if not token:
        _refuse(request, svc, "an API key is required: Authorization: Bearer <key>")
    return token


def _master(svc: Services, token: str) -> Principal | None:
    master = svc.settings.master_key
    if master is not None and hmac.compare_digest(token.encode(), master.get_secret_value().encode()):
        return Principal(role="admin", key_id="master")
    return None


def _verified(request: Request, svc: Services, principal: Principal | None) -> Principal:
    if principal is None:
        _refuse(request, svc, "invalid, expired or revoked API key")
    return principal


def caller(request: Request, svc: ServicesDep) -> Principal:
    """The principal of the request's API key (``Authorization: Bearer`` or ``x-api-key``); 401 otherwise
    (429 for an address locked out after too many refused keys)."""
    _check_lockout(request, svc)
    token = _required_token(request, svc)
    return _master(svc, token) or _verified(request, svc, svc.identity.verify(token))


async def gateway_caller(request: Request, svc: Services) -> Principal:
    """`caller` for the gateway's hot routes, on the event loop: a key verified within the identity cache's
    ``cache_s`` is answered from memory; a key not in the cache is looked up in a worker thread."""
    _check_lockout(request, svc)
    token = _required_token(request, svc)
    principal = _master(svc, token)
    if principal is None and token.startswith(KEY_PREFIX):
        principal = svc.identity.cached(token) or await anyio.to_thread.run_sync(svc.identity.verify, token)
    return _verified(request, svc, principal)


def reader(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """Admins and viewers read everything; members only what :func:`own` allows."""
    return principal


def admin(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "permission_error", "this needs an admin key")
    return principal


Caller = Annotated[Principal, Depends(caller)]
Reader = Annotated[Principal, Depends(reader)]
Admin = Annotated[Principal, Depends(admin)]


def own(principal: Principal, user_id: str | None) -> str | None:
    """The user a query may cover: anyone for admins/viewers; a member only themselves (403 otherwise)."""
    if principal.can_read_all:
        return user_id
    if user_id is not None and user_id != principal.user_id:
        raise ApiError(403, "permission_error", "members can only see their own usage")
    return principal.user_id
