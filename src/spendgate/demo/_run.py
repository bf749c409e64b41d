"""`run_demo`: a fake provider, a seeded ledger, the service on it, and live traffic, until Ctrl-C."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from spendgate.demo._cast import PERSONAS, persona
from spendgate.demo._seed import SeedReport, is_seeded, seed_history
from spendgate.demo._traffic import Caller, Trickle
from spendgate.meter import Meter
from spendgate.server import IdentityStore, create_app, uvicorn_options
from spendgate.settings import Settings, Upstream
from spendgate.testing import FakeReply, FakeRequest, FakeUpstream

__all__ = ["DEMO_MEMBER", "PROVIDER_KEY_ENV", "DemoKeys", "demo_settings", "issue_keys", "run_demo"]

#: The user whose member key the demo prints: she sees only her own usage (and her runaway job).
DEMO_MEMBER = "dana"
_ALERT_LOGGER = "spendgate.demo.alerts"
#: The environment variable holding the (fake) provider key the gateway forwards.
PROVIDER_KEY_ENV = "SG_DEMO_PROVIDER_KEY"
_ACTOR = "demo"
Out = Callable[[str], None]

_REPLY = (
    "Here is a summary of the points you raised, with the main risks first and a short plan for each. "
    "The figures below come from the last quarter and are rounded; the details follow in the appendix. "
)


def _say(text: str) -> None:
    print(text, flush=True)


def demo_settings(database: Path, fake: FakeUpstream, *, host: str, port: int, **extra: Any) -> Settings:
    """The demo service's settings: the ledger at ``database``, every provider pointed at ``fake`` (with the
    key in ``$SG_DEMO_PROVIDER_KEY``, which :func:`run_demo` sets: the fake accepts any).

    Retention is off (the history would otherwise start being deleted after 30 days of raw events), the
    settles commit directly (no journal), and alerts go to a log channel that the demo prints.
    """
    openai_models = ["gpt-", "chatgpt-", "o1", "o3", "o4", "text-embedding-"]
    upstreams = {
        "openai": Upstream(base_url=fake.openai_base_url, api_key_env=PROVIDER_KEY_ENV, models=openai_models),
        "anthropic": Upstream(base_url=fake.anthropic_base_url, api_key_env=PROVIDER_KEY_ENV, wire="anthropic",
                              models=["claude"]),
        "google": Upstream(base_url=fake.openai_base_url, api_key_env=PROVIDER_KEY_ENV, models=["gemini"]),
    }  # fmt: skip
    return Settings(
        database_url=f"sqlite:///{database}",
        journal_dir=None,
        counters_url="memory://",
        host=host,
        port=port,
        upstreams=upstreams,
        retention_interval_s=0,
        alerting={"channels": {"log": {"type": "log", "logger": _ALERT_LOGGER}}},
        **extra,
    )


def _responder(request: FakeRequest) -> FakeReply | None:
    """Realistic latency, and about one call in forty failing upstream (a 429 or a 503)."""
    roll = (request.index * 7919) % 1000
    latency = 0.15 + (roll % 500) / 1000
    if roll < 15:
        return FakeReply(status=429, latency_s=0.05)
    if roll < 25:
        return FakeReply(status=503, latency_s=latency)
    return FakeReply(latency_s=latency)


@dataclass(frozen=True, slots=True)
class DemoKeys:
    """Keys issued for this run of the demo (secrets: shown once)."""

    admin: str
    member: str
    member_user: str
    live: dict[str, str]
    """User id -> the key its live traffic uses."""


def issue_keys(settings: Settings) -> DemoKeys:
    """An admin key, a member key for :data:`DEMO_MEMBER`, and one key per user for the live traffic."""
    with Meter(settings=settings) as meter:
        ids = IdentityStore(meter.store.control, meter.clock)
        _, admin = ids.create_key(role="admin", name="demo admin", actor=_ACTOR)
        who = persona(DEMO_MEMBER)
        _, member = ids.create_key(role="member", user_id=who.user_id, team_id=who.team_id, name="demo sign-in",
                                   actor=_ACTOR)  # fmt: skip
        live = {}
        for p in PERSONAS:
            if not p.service:
                _, token = ids.create_key(role="member", user_id=p.user_id, team_id=p.team_id, name="live traffic",
                                          actor=_ACTOR)  # fmt: skip
                live[p.user_id] = token
    return DemoKeys(admin=admin, member=member, member_user=who.user_id, live=live)


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(f"port: cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None


class _Server(uvicorn.Server):
    """uvicorn's server, telling the demo when a signal asks it to stop (before it shuts down)."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C: uvicorn shuts down, re-raises the signal, and this handler turns it
    into a normal exit (the default action would kill the process before the temporary files are removed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_quietly(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, exit_quietly)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _alert_lines(out: Out) -> Iterator[None]:
    """Print the alerts the log channel delivers, one line each, while the demo runs."""

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out(f"  alert: {record.getMessage().removeprefix('[spendgate] ')}")

    logger = logging.getLogger(_ALERT_LOGGER)
    handler = Handler(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _banner(url: str, keys: DemoKeys, database: Path, temporary: bool, traffic: bool) -> str:
    kept = "deleted when the demo stops" if temporary else "kept: run again with the same --database to reuse it"
    who = persona(keys.member_user)
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}'
    curl = (f"curl -s {url}/v1/chat/completions -H 'Authorization: Bearer {keys.member}' "
            f"-H 'content-type: application/json' -d '{body}'")  # fmt: skip
    sdk = (f"from openai import OpenAI; c = OpenAI(base_url='{url}/v1', api_key='{keys.member}'); "
           "print(c.chat.completions.create(model='gpt-4o', messages=[{'role': 'user', 'content': 'Hi'}])"
           ".usage)")  # fmt: skip
    lines = [
        "",
        "spendgate demo is running",
        f"  dashboard   {url}/",
        f"  admin key   {keys.admin}",
        f"  member key  {keys.member}   ({who.name}: {who.tier} tier, {who.team_id} team; sees only her own usage)",
        f"  API docs    {url}/docs",
        f"  ledger      {database} ({kept})",
        "",
        "Sign in to the dashboard with the admin key. Then try the gateway (a fake provider answers: no account,",
        "no cost, every token counted and priced):",
        f"  {curl}",
        f'  python -c "{sdk}"',
        f"  curl -s {url}/api/v1/usage/summary -H 'Authorization: Bearer {keys.admin}'",
        "",
        ("Live traffic: a request every 1-3 s from the demo's users. " if traffic else "") + "Ctrl-C stops the demo.",
    ]
    return "\n".join(lines)


def _summary(report: SeedReport) -> str:
    decisions = ", ".join(f"{n} {action.upper()}" for action, n in sorted(report.decisions.items()))
    return (
        f"seeded {report.days} days of history in {report.seconds:.1f} s: {report.events:,} calls costing "
        f"${report.cost:,.2f} ({report.failures} failed, {report.cache_hits} served from cache), "
        f"{len(report.users)} users in {len(report.teams)} teams; budgets decided {decisions}; "
        f"{len(report.anomalies)} anomalies, {len(report.alerts)} alerts fired, "
        f"{len(report.recommendations)} recommendations"
    )


def run_demo(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    days: int = 30,
    database: Path | None = None,
    seed: int = 0,
    traffic: bool = True,
    out: Out = _say,
) -> int:
    """Run the demo until interrupted (Ctrl-C, SIGTERM); returns the exit status (0).

    Raises ValueError for a bad argument (a busy port, ``days`` out of range).
    """
    if not 1 <= days <= 90:
        raise ValueError(f"days: must be from 1 to 90, got {days}")
    _check_port(host, port)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_alert_lines(out))
        fake = stack.enter_context(FakeUpstream(reply_text=_REPLY, fill_max_tokens=True, responder=_responder))
        temporary = database is None
        if database is None:
            database = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spendgate-demo-"))) / "demo.db"
        settings = demo_settings(database, fake, host=host, port=port)
        os.environ.setdefault(PROVIDER_KEY_ENV, "sk-demo-fake-provider-key")
        with Meter(settings=settings) as meter:
            seeded = is_seeded(meter)
        if seeded:
            out(f"reusing the demo history in {database}")
        else:
            out(f"seeding {days} days of history into {database} ...")
            out(_summary(seed_history(settings, days=days, seed=seed)))
        keys = issue_keys(settings)
        url = f"http://{host}:{port}"
        callers = [Caller(persona(user), token) for user, token in keys.live.items()]
        trickle = Trickle(url, callers, seed=seed, out=out)
        stopping = threading.Event()

        def on_exit() -> None:  # a signal: no new live requests while the service shuts down
            stopping.set()
            trickle.halt()

        server = _Server(
            uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", lifespan="on",
                           **uvicorn_options()),
            on_exit=on_exit,
        )  # fmt: skip

        def announce() -> None:
            while not server.started:
                if stopping.wait(0.05):
                    return
            out(_banner(url, keys, database, temporary, traffic))
            if traffic and not stopping.is_set():
                trickle.start()

        announcer = threading.Thread(target=announce, name="spendgate-demo-announce", daemon=True)
        announcer.start()
        stack.enter_context(_sigterm_exits())
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn re-raises the signal it handled once it has shut down
            pass
        finally:
            stopping.set()
            trickle.stop()
            announcer.join(5)
            if server.started:
                out(trickle.counts.line().replace("live traffic:", "demo stopped; live traffic:", 1))
    return 0
