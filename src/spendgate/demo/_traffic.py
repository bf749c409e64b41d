"""The demo's live traffic: a request every few seconds through the gateway, over real HTTP.

Each request comes from one of the demo's users (with that user's own API key), on one of their models
and features, in the OpenAI wire format (OpenAI and Google models) or Anthropic's; some stream. What
the gateway answers is counted: served, refused by a budget or rate limit (402, 429), failed.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from spendgate.demo._cast import FEATURES, MODELS, Persona
from spendgate.demo._history import pick

__all__ = ["Caller", "Trickle", "prompt_text"]

_TEXT = (
    "the quarterly report shows steady growth in usage across every team while costs per request fell as "
    "cheaper models took over routine work please summarize the main risks and suggest next steps for the "
    "platform roadmap including caching batching and budget alerts for each department"
)
_WORDS = tuple(_TEXT.split(" "))
#: Longest prompt the trickle sends, in words (about as many tokens): keeps the demo light on CPU.
MAX_PROMPT_WORDS = 6_000


def prompt_text(words: int, salt: int) -> str:
    """About ``words`` tokens of plausible text (deterministic for a salt)."""
    start = salt % len(_WORDS)
    return " ".join(_WORDS[(start + i) % len(_WORDS)] for i in range(max(1, words)))


@dataclass(frozen=True, slots=True)
class Caller:
    """A persona and the API key its live requests use."""

    persona: Persona
    token: str


@dataclass(slots=True)
class Counts:
    sent: int = 0
    served: int = 0
    refused: int = 0
    failed: int = 0

    def line(self) -> str:
        return (f"live traffic: {self.sent} requests through the gateway ({self.served} served, "
                f"{self.refused} refused by a budget or rate limit, {self.failed} failed)")  # fmt: skip


class Trickle:
    """Sends a request every ``interval`` seconds (uniformly drawn) until stopped; ``start`` runs it in a thread."""

    def __init__(
        self,
        base_url: str,
        callers: Sequence[Caller],
        *,
        seed: int = 0,
        interval: tuple[float, float] = (1.0, 3.0),
        report_every: int = 20,
        out: Callable[[str], None] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if not callers:
            raise ValueError("callers: at least one is needed")
        self.base_url = base_url.rstrip("/")
        self.callers = list(callers)
        self.rng = random.Random(f"demo-live-{seed}")
        self.interval = interval
        self.report_every = report_every
        self.out = out
        self.timeout_s = timeout_s
        self.counts = Counts()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="spendgate-demo-traffic", daemon=True)
            self._thread.start()

    def halt(self) -> None:
        """Send nothing more (without waiting for a request in flight)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sending (a request in flight finishes first) and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            while not self._stop.wait(self.rng.uniform(*self.interval)):
                self.send_one(client)

    # -- one request ---------------------------------------------------------------------------------

    def send_one(self, client: httpx.Client) -> int | None:
        """Send one request; returns the HTTP status (None when the gateway could not be reached)."""
        rng = self.rng
        caller = rng.choice(self.callers)
        p = caller.persona
        model = MODELS[pick(rng, p.models)]
        feature = FEATURES[pick(rng, p.features)]
        words = min(MAX_PROMPT_WORDS, rng.randint(*feature.input_tokens))
        max_tokens = min(1_000, rng.randint(*feature.output_tokens))
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt_text(words, rng.randrange(1_000))}]
        headers = {
            "x-spendgate-tags": f"feature={feature.name}",
            "x-spendgate-session": f"{p.user_id}-live",
            "user-agent": "spendgate-demo/1.0",
        }
        if model.provider == "anthropic":
            path = "/v1/messages"
            body: dict[str, Any] = {"model": model.model, "max_tokens": max_tokens, "messages": messages}
            headers |= {"x-api-key": caller.token, "anthropic-version": "2023-06-01"}
        else:
            path = "/v1/chat/completions"
            stream = rng.random() < 0.3
            body = {"model": model.model, "max_tokens": max_tokens, "messages": messages}
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            headers["authorization"] = f"Bearer {caller.token}"
        status = self._post(client, path, body, headers)
        self._count(status)
        return status

    def _post(self, client: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> int | None:
        try:
            with client.stream("POST", path, content=json.dumps(body), headers=headers) as response:
                for _ in response.iter_bytes():
                    pass  # read the whole answer (a stream to its end) as a client would
                return response.status_code
        except httpx.HTTPError:
            return None

    def _count(self, status: int | None) -> None:
        with self._lock:
            c = self.counts
            c.sent += 1
            if status == 200:
                c.served += 1
            elif status in (402, 429):
                c.refused += 1
            else:
                c.failed += 1
            line = c.line() if self.report_every and c.sent % self.report_every == 0 else None
        if line is not None and self.out is not None:
            self.out(line)
