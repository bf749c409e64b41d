"""Requests per second and latency through the gateway vs straight to the fake upstream, same run. JSON.

    .venv/bin/python bench/gateway.py [--seconds 10] [--connections 32] [--litellm /tmp/litellm-venv]

Both sides serve the same non-streamed chat completion. The gateway runs as a user would start it for
throughput: `spendgate serve` (one uvicorn worker, SQLite ledger, memory counters, and so by default the
write-ahead journal beside the database: ``gateway_journal``), with a daily budget on the calling user,
so every request is authorized, forwarded, settled and recorded. Each side is warmed up first (the first
call of a process loads the tokenizer and the price catalog). Load comes from `wrk` (Debian package
`wrk`) in its own process; without it the script says so and stops. Latency figures are wrk's: at the
given number of connections (throughput) and with one connection (the latency the gateway adds to a
call). ``events_recorded`` is read after the ledger has been flushed, to compare with
``requests_answered`` (every request the gateway answered, warm-up included; a request cut off when wrk
stops may be recorded without being counted).

With ``--litellm VENV`` (a virtualenv with ``litellm[proxy]``), the LiteLLM proxy in front of the same
fake upstream is measured in the same run, for scale (it has no database here: no budgets, no ledger).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from spendgate.testing import FakeUpstream

MASTER = "bench-master-key-0123456789abcdef"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
WARMUP_S = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wrk(url: str, key: str, seconds: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        )
    try:
        out = subprocess.run(
            ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name,
             url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        assert m is not None, out
        value, unit = float(m.group(1)), m.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)

    return {
        "req_per_s": round(rps),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "requests": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def wait_ready(proc: subprocess.Popen[bytes], url: str, what: str, headers: dict[str, str] | None = None) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{what} did not start")


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def gateway_env(fake: FakeUpstream, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",  # serve journals beside it (bench.db.journal)
        "SPENDGATE_MASTER_KEY": MASTER,
        "SPENDGATE_OPENAI_BASE_URL": fake.openai_base_url,
        "OPENAI_API_KEY": "sk-bench",
    }


def cpu_times(pid: int) -> tuple[float, float] | None:
    """CPU time (user, system) a process has used so far, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far (None where there is no /proc)."""
    times = cpu_times(pid)
    return None if times is None else sum(times)


def measure(
    url: str, key: str, seconds: int, connections: int, pid: int | None = None
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Warm up, then wrk at ``connections`` and at 1 connection; also how many requests were answered.

    With ``pid`` (the server's process), the loaded run also reports that process's CPU time per request
    (``cpu_us_per_request``, of which ``cpu_system_us_per_request`` in the kernel): steadier than requests
    per second on a machine shared with other work.
    """
    warm = wrk(url, key, WARMUP_S, min(8, connections))
    before = cpu_times(pid) if pid is not None else None
    loaded = wrk(url, key, seconds, connections)
    after = cpu_times(pid) if pid is not None else None
    if before is not None and after is not None and loaded["requests"]:
        user, system = ((a - b) * 1e6 / loaded["requests"] for a, b in zip(after, before, strict=True))
        loaded["cpu_us_per_request"] = round(user + system, 1)
        loaded["cpu_system_us_per_request"] = round(system, 1)  # the kernel's part: socket reads and writes
    single = wrk(url, key, max(3, seconds // 2), 1)
    return loaded, single, warm["requests"] + loaded["requests"] + single["requests"]


def bench_gateway(fake: FakeUpstream, tmp: Path, seconds: int, connections: int) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "spendgate", "serve", "--port", str(port)]
    with running(args, gateway_env(fake, tmp)) as proc, httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {MASTER}"}, timeout=30
    ) as admin:  # fmt: skip
        wait_ready(proc, f"{base}/readyz", "the gateway")
        admin.post("/api/v1/users", json={"user_id": "bench", "tier": "enterprise"}).raise_for_status()
        key = admin.post("/api/v1/keys", json={"user_id": "bench", "role": "member"}).json()["key"]
        limit = {"scope": "user", "scope_id": "bench", "amount": "1000000"}
        admin.post("/api/v1/limits", json=limit).raise_for_status()
        loaded, single, answered = measure(f"{base}/v1/chat/completions", key, seconds, connections, proc.pid)
        time.sleep(0.5)  # requests cut off when wrk stopped finish
        summary = admin.get("/api/v1/usage/summary", params={"user_id": "bench"})  # flushes the journal first
        assert summary.status_code == 200, summary.text
    return {
        "gateway": loaded,
        "gateway_1_connection": single,
        "gateway_journal": (tmp / "bench.db.journal").is_dir(),
        "requests_answered": answered,
        "events_recorded": summary.json()["requests"],
    }


def bench_litellm(venv: Path, fake: FakeUpstream, tmp: Path, seconds: int, connections: int) -> dict[str, Any]:
    port = free_port()
    config = tmp / "litellm.yaml"
    model = {"model": f"openai/{BODY['model']}", "api_base": fake.openai_base_url, "api_key": "sk-bench"}
    config.write_text(json.dumps({"model_list": [{"model_name": BODY["model"], "litellm_params": model}],
                                  "general_settings": {"master_key": "sk-litellm-bench"}}))  # fmt: skip
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = [str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    with running(args, env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_ready(proc, f"{base}/health/liveliness", "the LiteLLM proxy")
        loaded, single, _ = measure(f"{base}/v1/chat/completions", "sk-litellm-bench", seconds, connections, proc.pid)
    return {"litellm": loaded, "litellm_1_connection": single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--litellm", type=Path, default=Path("/tmp/litellm-venv"),
                        help="a virtualenv with litellm[proxy] (skipped when it has none)")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/gateway.py needs wrk: apt-get install wrk")
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream() as fake:
        direct, direct_single, _ = measure(f"{fake.openai_base_url}/chat/completions", "sk-bench", args.seconds,
                                           args.connections)  # fmt: skip
        result["direct"], result["direct_1_connection"] = direct, direct_single
        result |= bench_gateway(fake, Path(tmp), args.seconds, args.connections)
        if (args.litellm / "bin" / "litellm").exists():
            result |= bench_litellm(args.litellm, fake, Path(tmp), args.seconds, args.connections)
        else:
            print(f"LiteLLM not measured: no {args.litellm / 'bin' / 'litellm'} (pip install 'litellm[proxy]' there)",
                  file=sys.stderr)  # fmt: skip
    gw = result["gateway"]
    result["gateway_share_of_direct"] = round(gw["req_per_s"] / direct["req_per_s"], 3) if direct["req_per_s"] else None
    result["added_p50_ms_unloaded"] = round(result["gateway_1_connection"]["p50_ms"] - direct_single["p50_ms"], 3)
    if "litellm" in result:
        result["litellm_added_p50_ms_unloaded"] = round(
            result["litellm_1_connection"]["p50_ms"] - direct_single["p50_ms"], 3
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
