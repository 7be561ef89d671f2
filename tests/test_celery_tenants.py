"""Tenants fanned out over real Celery workers: a real broker (RabbitMQ), a real PostgreSQL
state store, real worker processes (`crmsync worker`), each tenant a sandbox of its own.

Scaled to what a shared 2-core machine runs in about a minute: 12 tenants of a small
sandbox each, 3 workers, 3 ticks. What is checked does not depend on the scale: each tick
syncs every tenant exactly once, no two runs of a tenant overlap, and the CRMs end as they
end when each tenant is synced on its own, serially, against a SQLite store.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connector.sandbox import Sandbox
from connector.state import StateStore
from tests.runs import ROOT, in_process_engine, snapshot, write_env, written
from tests.state_backends import POSTGRES_URL, require_service

BROKER = os.environ.get("CRMSYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
TENANTS, WORKERS, TICKS = 12, 3, 3
SEED = 8
SLOW = "*:slow=1.0,delay=0.03"  # every request takes a little while: room to kill mid-run


def broker_unreachable() -> str | None:
    from kombu import Connection  # noqa: PLC0415

    try:
        with Connection(BROKER, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        return f"RabbitMQ at {BROKER} is unreachable ({exc})"
    return None


@dataclass
class Cluster:
    """Worker processes consuming a queue of their own, the tenant registry they read, and
    an app in this process to send tasks and read their results."""

    folder: Path
    shared_state: str
    queue: str = field(default_factory=lambda: f"crmsync-test-{uuid.uuid4().hex[:10]}")
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def registry(self) -> Path:
        return self.folder / "tenants"

    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
        return {**clean, "PYTHONPATH": str(ROOT), "CRMSYNC_BROKER_URL": BROKER,
                "CRMSYNC_QUEUE": self.queue, "CRMSYNC_RESULT_BACKEND": "rpc://",
                "CRMSYNC_TENANTS_DIR": str(self.registry),
                "CRMSYNC_REDELIVERED_WAIT_SECONDS": "30"}

    def start_worker(self, *extra: str) -> subprocess.Popen:
        number = len(self.workers) + 1
        log = self.folder / f"worker-{number}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "connector", "worker", "--pool", "prefork", "--concurrency",
             "1", "--name",
             f"w{number}-{self.queue}@%h", *extra],
            cwd=self.folder, env=self.env(), stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.workers.append(process)
        self.logs.append(log)
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "worker not ready in 60 s"
            time.sleep(0.2)
        return process

    def app(self):
        from connector.orchestration import make_app  # noqa: PLC0415

        return make_app(broker=BROKER, backend="rpc://", queue=self.queue)

    def add_tenant(self, name: str, sandbox: Sandbox, *, state: str | None = None) -> None:
        folder = self.folder / name
        folder.mkdir()
        env_file = write_env(sandbox, folder)
        done = subprocess.run(
            [sys.executable, "-m", "connector", "tenants", "add", name, "--env-file",
             str(env_file), "--state", state or self.shared_state],
            cwd=self.folder, env=self.env(), capture_output=True, text=True, timeout=60,
            check=False)
        assert done.returncode == 0, done.stderr

    def store(self, name: str) -> StateStore:
        return StateStore(self.shared_state, tenant=name)

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        from kombu import Connection, Queue  # noqa: PLC0415

        with Connection(BROKER) as connection:  # the broker keeps no queue of ours
            Queue(self.queue).bind(connection.default_channel).delete()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres_schema) -> Iterator[Cluster]:
    require_service(broker_unreachable(), "RabbitMQ")
    joint = "&" if "?" in POSTGRES_URL else "?"
    built = Cluster(tmp_path_factory.mktemp("cluster"),
                    f"{POSTGRES_URL}{joint}schema={postgres_schema}")
    built.registry.mkdir()
    try:
        for _ in range(WORKERS):
            built.start_worker()
        yield built
    finally:
        built.stop()


def edit(sandbox: Sandbox, tick: int, today: date) -> None:
    """Edits a person would make between two ticks, the same on twin sandboxes."""
    contacts = sorted(sandbox.hubspot_records("contacts"), key=lambda c: int(c["id"]))
    contact = contacts[(3 * tick) % len(contacts)]
    sandbox.update_hubspot("contacts", contact["id"], {"lifecyclestage": "salesqualifiedlead"})
    accounts = sorted(sandbox.salesforce_records("Account"), key=lambda a: a["Id"])
    sandbox.update_salesforce("Account", accounts[tick % len(accounts)]["Id"],
                              {"Expansion_Date__c": today.isoformat()})


def runs_of(cluster: Cluster, name: str) -> list:
    with cluster.store(name) as store:
        return sorted(store.journal.runs(100), key=lambda run: run.id)


def test_every_tenant_is_synced_once_per_tick_and_ends_as_a_serial_run_ends(cluster,
                                                                           tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    names = [f"tick-{n:02d}" for n in range(TENANTS)]
    app = cluster.app()
    with _sandboxes(TENANTS, now) as sandboxes, _sandboxes(TENANTS, now) as twins:
        for name, sandbox in zip(names, sandboxes, strict=True):
            cluster.add_tenant(name, sandbox)
        workers_used: set[int] = set()
        for tick in range(TICKS):
            for sandbox, twin in zip(sandboxes, twins, strict=True):
                edit(sandbox, tick, today)
                edit(twin, tick, today)
            sent = [app.send_task("crmsync.sync", args=(name,)) for name in names]
            results = [result.get(timeout=240) for result in sent]
            assert [r["status"] for r in results] == ["ok"] * TENANTS, results
            workers_used |= {r["pid"] for r in results}
            for number, twin in enumerate(twins):  # the same tick, serially, on SQLite
                store, engine = in_process_engine(twin, tmp_path / f"serial-{number}.db")
                with store:
                    assert engine.sync().status == "ok"
        assert len(workers_used) == WORKERS, "the runs did not spread over the workers"
        for name, sandbox, twin in zip(names, sandboxes, twins, strict=True):
            runs = runs_of(cluster, name)
            assert [run.status for run in runs] == ["ok"] * TICKS, (name, runs)
            for earlier, later in itertools.pairwise(runs):
                assert earlier.ended_at <= later.started_at, (name, "two runs overlapped")
            assert snapshot(sandbox) == snapshot(twin), name


def test_a_tenant_sent_twice_at_once_runs_once_and_the_other_task_says_already_running(
        cluster):
    with Sandbox(seed=30) as sandbox:
        cluster.add_tenant("twice", sandbox)
        sandbox.set_faults(SLOW)
        app = cluster.app()
        first = app.send_task("crmsync.backfill", args=("twice",))
        _wait_for_holder(cluster, "twice")
        second = app.send_task("crmsync.sync", args=("twice",))
        refused = second.get(timeout=120)
        assert refused["status"] == "already running", refused
        assert "already running" in refused["message"] and refused["seconds"] < 5
        assert first.state != "SUCCESS"  # the first was still running meanwhile
        done = first.get(timeout=240)
        assert done["status"] == "ok" and done["pid"] != refused["pid"]
    assert [run.kind for run in runs_of(cluster, "twice")] == ["backfill"]


def test_a_worker_killed_mid_run_loses_the_lock_and_the_redelivered_task_completes(
        cluster, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    with Sandbox(seed=30, now=now) as reference:
        store, engine = in_process_engine(reference, tmp_path / "reference.db")
        with store:
            assert engine.backfill().status == "ok"
        expected = snapshot(reference)
    with Sandbox(seed=30, now=now) as sandbox:
        cluster.add_tenant("killed", sandbox)
        untouched = snapshot(sandbox)
        sandbox.set_faults(SLOW)
        base = written(sandbox)
        task = cluster.app().send_task("crmsync.backfill", args=("killed",))
        holder = _wait_for_holder(cluster, "killed")
        ours = {child for process in cluster.workers for child in _children(process.pid)}
        assert holder["pid"] in ours, "the run is not in one of this test's workers"
        deadline = time.monotonic() + 120
        while written(sandbox) - base < 60:  # mid-write: some batches sent, more to come
            assert time.monotonic() < deadline, "the run never reached its writes"
            time.sleep(0.005)
        os.kill(holder["pid"], signal.SIGKILL)  # the process running the run: as the OOM killer
        done = task.get(timeout=240)  # delivered again (its worker starts a new process)
        sandbox.set_faults(None)
        assert done["status"] == "ok" and done["redelivered"], done
        assert done["pid"] != holder["pid"]
        final = snapshot(sandbox)

    runs = runs_of(cluster, "killed")
    assert [run.status for run in runs] == ["interrupted", "ok"], runs
    with cluster.store("killed") as store:
        assert store.lock.holder() is None
        afters: dict[tuple[str, str], set[str]] = {}
        audited: dict[tuple[str, str], object] = {}
        for run in runs:
            assert store.journal.intents(run.id) == []  # every intent has its outcome
            for entry in store.journal.entries(run.id):
                key = (str(entry.ref), entry.field)
                audited[key] = entry.after
                if key[1] == "lifecyclestage" and entry.after == "":
                    continue  # the clear half of a clear-then-set
                afters.setdefault(key, set()).add(json.dumps(entry.after))
    twice = {key: values for key, values in afters.items() if len(values) > 1}
    assert not twice, f"fields written with different values: {twice}"
    changed = {(ref, name): value for ref, values in final.items()
               for name, value in values.items() if untouched[ref][name] != value}
    assert changed and all(audited.get(key) == value for key, value in changed.items()), \
        "a change in the CRMs is missing from the audit"
    assert final == expected


def test_one_tenants_failure_or_stop_never_touches_another_tenants_run(cluster, tmp_path):
    bad_mapping = tmp_path / "bad.yaml"
    bad_mapping.write_text("picklists: {hubspot: {contacts: {lifecyclestage: {lead: nope}}}}\n",
                           encoding="utf-8")
    with Sandbox(seed=SEED) as healthy, Sandbox(seed=SEED) as broken, \
            Sandbox(seed=SEED) as failing, \
            Sandbox(seed=SEED, hubspot_daily_limit=1000, hubspot_daily_used=600) as capped:
        for name, sandbox in (("healthy", healthy), ("broken", broken), ("failing", failing),
                              ("capped", capped)):
            cluster.add_tenant(name, sandbox)
        (cluster.registry / "broken.toml").write_text(
            (cluster.registry / "broken.toml").read_text(encoding="utf-8")
            + f"mapping = {json.dumps(str(bad_mapping))}\n", encoding="utf-8")
        failing.set_faults("*:500=1.0")
        app = cluster.app()
        sent = {name: app.send_task("crmsync.sync", args=(name,))
                for name in ("broken", "failing", "capped", "healthy")}
        outcome = {}
        for name, result in sent.items():
            try:
                outcome[name] = result.get(timeout=240)["status"]
            except Exception as exc:
                outcome[name] = f"{type(exc).__name__}: {exc}"
    assert outcome["healthy"] == "ok"
    assert outcome["capped"] == "stopped"  # its daily budget: resumable, exit 3
    assert outcome["broken"].startswith("TenantRunFailed") and "bad.yaml" in outcome["broken"]
    assert outcome["failing"].startswith("TenantRunFailed")
    assert [run.status for run in runs_of(cluster, "healthy")] == ["ok"]


def test_beat_sends_each_tenant_its_sync_on_the_tenants_own_schedule(cluster, tmp_path):
    from connector.orchestration import tenant_schedule  # noqa: PLC0415

    with Sandbox(seed=SEED) as every_second, Sandbox(seed=SEED) as never:
        beat = Cluster(tmp_path, cluster.shared_state)
        beat.registry.mkdir()
        beat.add_tenant("beat-often", every_second)
        beat.add_tenant("beat-off", never)
        for name, every in (("beat-often", "2s"), ("beat-off", "off")):
            file = beat.registry / f"{name}.toml"
            file.write_text(file.read_text(encoding="utf-8") + f'sync_every = "{every}"\n',
                            encoding="utf-8")
        os.environ["CRMSYNC_TENANTS_DIR"] = str(beat.registry)
        try:
            schedule = tenant_schedule()
        finally:
            del os.environ["CRMSYNC_TENANTS_DIR"]
        assert set(schedule) == {"sync beat-often"}
        assert schedule["sync beat-often"]["schedule"].total_seconds() == 2
        try:
            beat.start_worker("--beat")
            deadline = time.monotonic() + 60
            while len(runs_of(beat, "beat-often")) < 2:
                assert time.monotonic() < deadline, "beat did not send two ticks in 60 s"
                time.sleep(0.5)
        finally:
            beat.stop()
        assert runs_of(beat, "beat-off") == []
        assert never.counters()["total_requests"] == 0


def test_tenants_run_sends_runs_to_the_workers_from_the_command_line(cluster):
    with Sandbox(seed=SEED) as sandbox:
        cluster.add_tenant("by-hand", sandbox)

        def crmsync(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "connector", "tenants", "run", *args],
                                  cwd=cluster.folder, env=cluster.env(), capture_output=True,
                                  text=True, timeout=60, check=False)

        unknown = crmsync("by-hamd")
        assert unknown.returncode == 2 and "did you mean 'by-hand'?" in unknown.stderr
        sent = crmsync("by-hand")
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("by-hand\tcrmsync.sync\t")
        deadline = time.monotonic() + 120
        while [run.status for run in runs_of(cluster, "by-hand")] != ["ok"]:
            assert time.monotonic() < deadline, "the run sent never ran"
            time.sleep(0.2)


# ---- helpers ---------------------------------------------------------------------------------

class _sandboxes:
    """`count` sandboxes seeded SEED + n, all started, all stopped at the end."""

    def __init__(self, count: int, now: datetime) -> None:
        self.all = [Sandbox(seed=SEED + n, now=now) for n in range(count)]

    def __enter__(self) -> list[Sandbox]:
        for sandbox in self.all:
            sandbox.__enter__()
        return self.all

    def __exit__(self, *exc: object) -> None:
        for sandbox in self.all:
            sandbox.__exit__(None, None, None)


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (a prefork worker's pool processes)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _wait_for_holder(cluster: Cluster, name: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        with cluster.store(name) as store:
            holder = store.lock.holder()
        if holder is not None:
            return holder
        assert time.monotonic() < deadline, f"no run of {name} started"
        time.sleep(0.05)


def test_the_tenants_benchmark_still_runs(tmp_path, postgres_schema):
    """`python -m bench --only tenants` at its smoke size: the figures are bench/RESULTS.md's,
    this only keeps the code from rotting (it needs the same services as the tests here)."""
    require_service(broker_unreachable(), "RabbitMQ")
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--only", "tenants"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Many tenants: Celery workers, and PostgreSQL against SQLite" in done.stdout
    assert "| 2 | 3 | 60 |" in done.stdout and "| 300 | backfill |" in done.stdout
    assert "| 300 | sync right after: re-reads the backfill's writes, plans 0 |" in done.stdout
