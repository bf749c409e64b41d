"""Restart the ledger's PostgreSQL (a cluster of the test's own) under load: readiness reports the outage,
settles acknowledged meanwhile wait in the write-ahead journal and reach the ledger once it is back,
every acknowledged call exactly once."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spendgate.testing import FakeUpstream
from test_faults_kill import MASTER, _free_port, _loading, _service

THREADS = 4
_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class PrivatePostgres:
    """A throwaway cluster on a free port, run as the ``postgres`` user (initdb refuses root)."""

    def __init__(self, root: Path) -> None:
        self.bin, self.data, self.port = _BIN[-1], root / "pgdata", _free_port()
        root.mkdir(parents=True)
        root.chmod(0o777)
        for parent in root.parents:  # the postgres user must reach the data directory
            if parent == Path("/tmp") or parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "initdb"), "-D", str(self.data),
                        "-A", "trust", "-U", "postgres"], check=True, capture_output=True)  # fmt: skip
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
                       check=True, capture_output=True)  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-w", "-t", "30", "-l", str(self.data / "log"), "start")

    def crash(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop")  # like a power cut: no shutdown checkpoint


@pytest.fixture
def private_pg(tmp_path: Path) -> Iterator[PrivatePostgres]:
    if not _BIN or shutil.which("runuser") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL's server binaries are missing (CI=true: a missing service is a failure)")
        pytest.skip("PostgreSQL's server binaries are not installed")
    cluster = PrivatePostgres(tmp_path / "pg")
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            cluster._ctl("-m", "immediate", "stop")


def test_ledger_restart_under_load_loses_nothing_acknowledged(tmp_path: Path, private_pg: PrivatePostgres) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with FakeUpstream() as fake:
        env = {
            **os.environ,
            "SPENDGATE_DATABASE_URL": private_pg.url,
            "SPENDGATE_JOURNAL_DIR": str(tmp_path / "journal"),
            "SPENDGATE_MASTER_KEY": MASTER,
            "SPENDGATE_OPENAI_BASE_URL": fake.openai_base_url,
            "OPENAI_API_KEY": "sk-upstream",
        }
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER}"}, timeout=20)
        with _service(env, port):
            admin.post("/api/v1/users", json={"user_id": "dana"}).raise_for_status()
            key = admin.post("/api/v1/keys", json={"user_id": "dana", "role": "member"}).json()["key"]
            with _loading(base, key, 40) as acknowledged:
                private_pg.crash()
                outage_seen = False
                deadline = time.monotonic() + 20
                while not outage_seen and time.monotonic() < deadline:
                    outage_seen = admin.get("/readyz").status_code == 503
                    time.sleep(0.2)
                during = len(acknowledged)
                time.sleep(1.0)
                private_pg.start()
                deadline = time.monotonic() + 30
                while admin.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(1.0)
            tags: list[str] = []
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:  # the journal drains into the ledger that came back
                exported = admin.get("/api/v1/export", params={"format": "json", "user_id": "dana"})
                if exported.status_code == 200:
                    tags = [event["tags"].get("req") for event in exported.json()]
                    if set(acknowledged) <= set(tags):
                        break
                time.sleep(0.5)
        admin.close()
    assert outage_seen  # readiness reported the outage
    assert during > 0 and len(acknowledged) > during  # traffic before the crash and after the restart
    assert len(tags) == len(set(tags))  # nothing twice
    assert set(acknowledged) <= set(tags)  # nothing acknowledged lost
