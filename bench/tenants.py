"""Many tenants: throughput of Celery workers, and the PostgreSQL store against SQLite.

1. **Fan-out.** N tenants, each its own sandbox with HubSpot's real per-portal limits (100
   requests per 10 s, 5 searches per second): a tenant's run waits on its own API window
   far more than it computes. One round per worker count (1, 2, 4 by default): a fresh set
   of sandboxes (same seeds), a fresh PostgreSQL schema, the workers (`crmsync worker`,
   one run at a time each), and one backfill task per tenant sent at once. Wall time from
   the first task sent to the last result, tenants per minute, the speed-up over one worker,
   and the CPU the workers and the sandboxes used (both share this machine's cores: where
   their sum nears the core count, scaling stops).
2. **One tenant, two stores.** The same backfill and then a sync with nothing to do, on
   SQLite and on PostgreSQL, each against a fresh sandbox of the same seed: the wall-time
   ratio (goal: PostgreSQL within 1.3x).

Needs PostgreSQL (CRMSYNC_TEST_POSTGRES_URL, default postgresql://root@127.0.0.1:5432/test)
and RabbitMQ (CRMSYNC_TEST_BROKER_URL, default amqp://guest:guest@127.0.0.1:5672//).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench._engine import engine_for
from bench._remote import NO_LIMITS, RemoteSandbox, SandboxSpec
from bench._sizes import organisations_for_persons, show_size

__all__ = ["StoreResult", "TenantsResult", "measure_stores", "measure_tenants",
           "render_tenants"]

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("CRMSYNC_TEST_POSTGRES_URL",
                              "postgresql://root@127.0.0.1:5432/test")
BROKER_URL = os.environ.get("CRMSYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
# HubSpot's per-portal rate (Free/Starter: 100 requests per 10 s, searches 5 per second),
# with the window shrunk tenfold in count and time: the same 10 requests per second, so a
# tenant of a thousand persons waits on its window as a larger one does on the full one.
PORTAL_LIMITS = {"hubspot_requests_per_window": 10, "hubspot_window_seconds": 1.0,
                 "search_requests_per_second": 5}
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class TenantsResult:
    workers: int
    tenants: int
    persons_each: int
    seconds: float
    worker_cpu: float
    sandbox_cpu: float
    statuses: dict[str, int]

    @property
    def per_minute(self) -> float:
        return self.tenants * 60 / self.seconds


@dataclass(frozen=True)
class StoreResult:
    persons: int
    backend: str
    backfill_seconds: float
    sync_seconds: float
    applied: int
    sync_planned: int


# ---- the sandboxes of many tenants, in one process of their own -----------------------------

def _farm(conn: Connection, specs: list[dict[str, Any]]) -> None:
    """Child process: start a sandbox per spec, send their settings, serve until told."""
    from connector.sandbox import Sandbox  # noqa: PLC0415 - in the child only

    sandboxes = [Sandbox(**spec) for spec in specs]
    try:
        for sandbox in sandboxes:
            sandbox.__enter__()
        conn.send([sandbox.settings_env() for sandbox in sandboxes])
        conn.recv()  # close
    finally:
        for sandbox in sandboxes:
            sandbox.__exit__(None, None, None)


class SandboxFarm:
    """N sandboxes in one child process: the tenants' CRMs, off the workers' CPU accounts."""

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_farm, args=(child, specs), daemon=True)
        self.envs: list[dict[str, str]] = []

    def __enter__(self) -> SandboxFarm:
        self.process.start()
        if not self._conn.poll(600):
            self.process.kill()
            raise RuntimeError("the sandboxes did not start")
        self.envs = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            self._conn.send("close")
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


# ---- fan-out -------------------------------------------------------------------------------

def measure_tenants(tenants: int, persons_each: int, worker_counts: list[int], workdir: Path,
                    say: Callable[[str], None]) -> list[TenantsResult]:
    return [_round(tenants, persons_each, workers, workdir / f"workers-{workers}", say)
            for workers in worker_counts]


def _round(tenants: int, persons_each: int, workers: int, folder: Path,
           say: Callable[[str], None]) -> TenantsResult:
    folder.mkdir(parents=True)
    schema = f"crmsync_bench_{uuid.uuid4().hex[:10]}"
    queue = f"crmsync-bench-{uuid.uuid4().hex[:10]}"
    shared = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={schema}"
    specs = [{"seed": 100 + n, "organisations": organisations_for_persons(persons_each),
              **PORTAL_LIMITS} for n in range(tenants)]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")},
           "PYTHONPATH": str(ROOT), "CRMSYNC_BROKER_URL": BROKER_URL, "CRMSYNC_QUEUE": queue,
           "CRMSYNC_RESULT_BACKEND": "rpc://", "CRMSYNC_TENANTS_DIR": str(folder / "tenants")}
    say(f"[bench] tenants: {tenants} x {show_size(persons_each)} persons on {workers} "
        f"worker(s)")
    processes: list[subprocess.Popen] = []
    try:
        with SandboxFarm(specs) as farm:
            _register(farm.envs, shared, folder, env)
            _prepare_schema(shared)
            for n in range(workers):
                processes.append(_start_worker(n, folder, env))
            app = _app(queue)
            cpu_before = sum(_cpu_seconds(p.pid) for p in processes)
            farm_before = _cpu_seconds(farm.process.pid)
            started = time.monotonic()
            sent = [app.send_task("crmsync.backfill", args=(f"t{n:03d}",))
                    for n in range(tenants)]
            statuses: dict[str, int] = {}
            for result in sent:
                try:
                    status = result.get(timeout=3600)["status"]
                except Exception as exc:
                    status = type(exc).__name__
                statuses[status] = statuses.get(status, 0) + 1
            seconds = time.monotonic() - started
            worker_cpu = sum(_cpu_seconds(p.pid) for p in processes) - cpu_before
            sandbox_cpu = _cpu_seconds(farm.process.pid) - farm_before
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)
        _drop_schema(schema)
        _drop_queue(queue)
    return TenantsResult(workers, tenants, persons_each, seconds, worker_cpu, sandbox_cpu,
                         statuses)


def _register(envs: list[dict[str, str]], shared: str, folder: Path,
              env: dict[str, str]) -> None:
    from connector.tenants import add_tenant  # noqa: PLC0415

    for n, settings in enumerate(envs):
        env_file = folder / f"t{n:03d}.env"
        lines = [f"{k}={v}" for k, v in settings.items()]
        lines += ["CRMSYNC_RETRY_INITIAL_WAIT_SECONDS=0.01", "CRMSYNC_RETRY_MAX_WAIT_SECONDS=0.1",
                  # the client's window as long as the sandbox's (time-scaled, as bench/rate)
                  f"CRMSYNC_HUBSPOT_WINDOW_SECONDS={PORTAL_LIMITS['hubspot_window_seconds']}"]
        env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        add_tenant(f"t{n:03d}", env_file=env_file, state=shared,
                   directory=Path(env["CRMSYNC_TENANTS_DIR"]))


def _prepare_schema(shared: str) -> None:
    """Create the schema before the clock starts: the first workers would otherwise queue on
    the migration lock, which a running deployment never does."""
    from connector.state import StateStore  # noqa: PLC0415

    StateStore(shared, tenant="bench-setup").close()


def _start_worker(number: int, folder: Path, env: dict[str, str]) -> subprocess.Popen:
    log = folder / f"worker-{number}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "worker", "--pool", "prefork", "--concurrency", "1",
         "--name", f"bench{number}-{env['CRMSYNC_QUEUE']}@%h"],
        cwd=folder, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "ready" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"worker {number} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return process


def _app(queue: str) -> Any:
    from connector.orchestration import make_app  # noqa: PLC0415

    return make_app(broker=BROKER_URL, backend="rpc://", queue=queue)


def _cpu_seconds(pid: int) -> float:
    """CPU used by a process and its live children (a prefork worker's pool processes)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def _drop_schema(schema: str) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _drop_queue(queue: str) -> None:
    from kombu import Connection, Queue  # noqa: PLC0415

    with Connection(BROKER_URL) as connection:
        Queue(queue).bind(connection.default_channel).delete()


# ---- one tenant on each store -------------------------------------------------------------

def measure_stores(persons: int, workdir: Path,
                   say: Callable[[str], None]) -> list[StoreResult]:
    schema = f"crmsync_bench_{uuid.uuid4().hex[:10]}"
    locations = {
        "sqlite": workdir / f"store-{persons}.db",
        "postgresql": f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={schema}"
                      f"&tenant=bench",
    }
    results = []
    try:
        for backend, location in locations.items():
            say(f"[bench] one tenant, {show_size(persons)} persons, on {backend}")
            spec = SandboxSpec(organisations_for_persons(persons), seed=7,
                               limits=tuple(NO_LIMITS.items()))
            with RemoteSandbox(spec) as sandbox:
                results.append(_one_store(persons, backend, location, sandbox.env))
    finally:
        _drop_schema(schema)
    return results


def _one_store(persons: int, backend: str, location: Path | str,
               env: dict[str, str]) -> StoreResult:
    from bench._engine import CLIENT_NO_LIMITS  # noqa: PLC0415

    with engine_for(env, location, **CLIENT_NO_LIMITS) as engine:  # type: ignore[arg-type]
        started = time.monotonic()
        backfill = engine.backfill()
        backfill_seconds = time.monotonic() - started
    with engine_for(env, location, **CLIENT_NO_LIMITS) as engine:  # type: ignore[arg-type]
        started = time.monotonic()
        sync = engine.sync()
        sync_seconds = time.monotonic() - started
    if backfill.status not in ("ok", "rejects") or sync.status not in ("ok", "rejects"):
        raise RuntimeError(f"{backend}: backfill {backfill.status} ({backfill.message}), "
                           f"sync {sync.status} ({sync.message})")
    return StoreResult(persons, backend, backfill_seconds, sync_seconds, backfill.applied,
                       sync.planned)


# ---- tables --------------------------------------------------------------------------------

def render_tenants(fan_out: list[TenantsResult], stores: list[StoreResult]) -> str:
    parts = []
    if fan_out:
        base = fan_out[0]
        rows = ["| workers | tenants | persons each | wall s | tenants/min | speed-up | "
                "worker CPU s | sandbox CPU s | CPU s per wall s | runs |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in fan_out:
            speed = base.seconds / r.seconds
            busy = (r.worker_cpu + r.sandbox_cpu) / r.seconds
            runs = ", ".join(f"{n} {s}" for s, n in sorted(r.statuses.items()))
            rows.append(f"| {r.workers} | {r.tenants} | {show_size(r.persons_each)} | "
                        f"{r.seconds:.1f} | {r.per_minute:.1f} | {speed:.2f}x "
                        f"(ideal {r.workers / base.workers:.0f}x) | {r.worker_cpu:.1f} | "
                        f"{r.sandbox_cpu:.1f} | {busy:.2f} | {runs} |")
        parts.append("\n".join(rows))
    if stores:
        by = {(s.persons, s.backend): s for s in stores}
        rows = ["| persons | run | SQLite s | PostgreSQL s | PostgreSQL / SQLite | within 1.3x |",
                "|---|---|---|---|---|---|"]
        for persons in sorted({s.persons for s in stores}):
            lite, pg = by.get((persons, "sqlite")), by.get((persons, "postgresql"))
            if not (lite and pg):
                continue
            for label, a, b in (("backfill", lite.backfill_seconds, pg.backfill_seconds),
                                (f"sync right after: re-reads the backfill's writes, plans "
                                 f"{pg.sync_planned}", lite.sync_seconds, pg.sync_seconds)):
                ratio = b / a
                rows.append(f"| {show_size(persons)} | {label} | {a:.2f} | {b:.2f} | "
                            f"{ratio:.2f} | {'yes' if ratio <= 1.3 else '**no**'} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts)
