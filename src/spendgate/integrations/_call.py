"""One metered call as pure logic: who makes it, what to authorize, what to send, and how it ended.

The sync and async runners (:mod:`._run`) and the stream wrappers (:mod:`._streams`) only do the I/O
around a :class:`Call`; every decision lives here once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spendgate.budgets import Action
from spendgate.errors import BudgetExceeded, InvalidUsageError, TokenizationError
from spendgate.integrations._endpoints import Endpoint
from spendgate.integrations._errors import error_kind, status_code
from spendgate.integrations._usage import response_text
from spendgate.tokens import TokenCounter
from spendgate.usage import Usage

if TYPE_CHECKING:
    from spendgate.meter import Authorization

__all__ = ["OPTION_NAMES", "OPTION_PREFIX", "Call", "Identity", "Outcome", "Refused", "split_options"]

logger = logging.getLogger("spendgate.integrations")

#: Per-call options are keyword arguments named ``spendgate_<name>``; they never reach the SDK.
OPTION_PREFIX = "spendgate_"
OPTION_NAMES = ("api_key_id", "metadata", "request_type", "session_id", "tags", "team_id", "tier", "user_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who a call is made for and how to file it; per-call options override (tags and metadata merge)."""

    user_id: str | None = None
    team_id: str | None = None
    api_key_id: str | None = None
    session_id: str | None = None
    tier: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    request_type: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def with_options(self, options: Mapping[str, Any]) -> Identity:
        """A copy with the per-call ``options`` (names without the ``spendgate_`` prefix) applied."""
        if not options:
            return self
        merged = {name: value for name, value in options.items() if name not in ("tags", "metadata")}
        for name in ("tags", "metadata"):
            extra = options.get(name)
            if extra is not None:
                if not isinstance(extra, Mapping):
                    raise InvalidUsageError(f"{OPTION_PREFIX}{name}", "must be a mapping")
                merged[name] = {**getattr(self, name), **extra}
        return dataclasses.replace(self, **merged)


def split_options(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate ``spendgate_*`` options from the keyword arguments meant for the SDK or function."""
    call_kwargs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in kwargs.items():
        if not key.startswith(OPTION_PREFIX):
            call_kwargs[key] = value
            continue
        name = key[len(OPTION_PREFIX) :]
        if name not in OPTION_NAMES:
            known = ", ".join(OPTION_PREFIX + n for n in OPTION_NAMES)
            raise TypeError(f"unknown spendgate option {key!r} (known: {known})")
        options[name] = value
    return call_kwargs, options


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended: ``ok`` settles ``usage``; otherwise the hold is released, charging ``usage``."""

    ok: bool
    usage: Usage
    fields: dict[str, Any]


class Refused(Exception):
    """Internal: the call must not be made. ``release`` says the authorization holds a reservation."""

    def __init__(self, error: BudgetExceeded, *, release: bool, error_kind: str = "") -> None:
        super().__init__(str(error))
        self.error = error
        self.release = release
        self.error_kind = error_kind


class Call:
    """One call to meter: its provider, endpoint, identity and keyword arguments.

    ``model_param`` names the argument that carries the model (a DOWNGRADE rewrites it); ``None`` when
    the call has no such argument, so a downgrade cannot be applied and is refused instead.
    """

    def __init__(
        self,
        *,
        counter: TokenCounter,
        provider: str,
        model: str,
        endpoint: Endpoint,
        identity: Identity,
        kwargs: Mapping[str, Any],
        model_param: str | None = "model",
        stream: bool = False,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise InvalidUsageError("model", "is required to meter the call")
        self.counter = counter
        self.provider = provider
        self.model = model
        self.endpoint = endpoint
        self.identity = identity
        self.kwargs = dict(kwargs)
        self.model_param = model_param
        self.stream = stream
        try:
            self.input_tokens = endpoint.input_tokens(counter, provider, model, self.kwargs)
        except (InvalidUsageError, TokenizationError) as exc:  # the provider will judge the request itself
            logger.warning("spendgate could not count the input of a %s/%s call (%s)", provider, model, exc)
            self.input_tokens = 0
        self.hide_usage = False
        if stream:
            self.kwargs, self.hide_usage = endpoint.prepare_stream(self.kwargs)

    @property
    def request_type(self) -> str | None:
        return self.identity.request_type or self.endpoint.request_type

    def authorize_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Meter.authorize``."""
        ident = self.identity
        return {
            "provider": self.provider,
            "model": self.model,
            "user_id": ident.user_id,
            "team_id": ident.team_id,
            "api_key_id": ident.api_key_id,
            "session_id": ident.session_id,
            "tier": ident.tier,
            "tags": dict(ident.tags),
            "input_tokens": self.input_tokens,
            "max_tokens": self.endpoint.max_tokens(self.kwargs),
        }

    def admit(self, auth: Authorization) -> dict[str, Any]:
        """The keyword arguments to call with under ``auth``; raises :class:`Refused` if the call must not run.

        A DOWNGRADE to another provider cannot be made through this client (it would need the other
        provider's SDK, which the gateway has): it is refused, the hold released.
        """
        if not auth.allowed:
            raise Refused(BudgetExceeded(auth), release=False)
        kwargs = dict(self.kwargs)
        if auth.model != self.model or auth.provider != self.provider:
            problem = None
            if auth.provider != self.provider:
                problem = (
                    f"the budget allows the call only as a downgrade to {auth.provider}/{auth.model}, which is not "
                    f"a {self.provider} model; a cross-provider downgrade needs the spendgate gateway"
                )
            elif self.model_param is None:
                problem = f"the budget allows only a downgrade to {auth.model}, and this call takes no model argument"
            if problem is not None:
                note = f"{auth.note}; {problem}" if auth.note else problem
                raise Refused(BudgetExceeded(dataclasses.replace(auth, note=note)), release=True,
                              error_kind="downgrade_refused")  # fmt: skip
            kwargs[self.model_param or "model"] = auth.model
            logger.info("spendgate downgraded %s/%s to %s: %s", self.provider, self.model, auth.model, auth.reason)
        if auth.action is Action.WARN:
            logger.warning("spendgate budget warning for %s/%s: %s", self.provider, self.model, auth.reason)
        return kwargs

    def fields(self, latency_ms: float | None, **extra: Any) -> dict[str, Any]:
        """Event fields shared by settle and release."""
        out: dict[str, Any] = {}
        if latency_ms is not None:
            out["latency_ms"] = max(0, round(latency_ms))
        if self.request_type is not None:
            out["request_type"] = self.request_type
        if self.identity.metadata:
            out["metadata"] = dict(self.identity.metadata)
        out.update(extra)
        return out

    def estimate(self, output_tokens: int) -> Usage:
        """Usage estimated from the counted input and ``output_tokens``."""
        return Usage(input_tokens=self.input_tokens, output_tokens=output_tokens)

    def success(self, auth: Authorization, response: Any, latency_ms: float | None) -> Outcome:
        """Settle with the usage the response reports; estimate it (and say so) when it reports none."""
        try:
            usage = self.endpoint.usage(auth.provider, response)
        except InvalidUsageError as exc:
            logger.warning(
                "spendgate could not read the usage of a %s response (%s); estimating it", auth.provider, exc
            )
            usage = None
        if usage is not None:
            return Outcome(True, usage, self.fields(latency_ms))
        text = response_text(response)
        output = self.counter.count(auth.provider, auth.model, text=text).total if text else 0
        return Outcome(True, self.estimate(output), self.fields(latency_ms, tokens_estimated=True))

    def failure(
        self, exc: BaseException, latency_ms: float | None, partial: Usage | None = None, *, estimated: bool = True
    ) -> Outcome:
        """Release the hold after ``exc``, charging ``partial`` usage if some was consumed (``estimated``
        unless the provider reported it)."""
        extra: dict[str, Any] = {"error_kind": error_kind(exc)}
        code = status_code(exc)
        if code is not None:
            extra["status_code"] = code
        if partial is not None and estimated:
            extra["tokens_estimated"] = True
        return Outcome(False, partial or Usage(), self.fields(latency_ms, **extra))

    def refusal(self, refused: Refused) -> Outcome:
        """Release a hold whose call was refused after all (nothing was sent)."""
        return Outcome(False, Usage(), self.fields(None, error_kind=refused.error_kind))
