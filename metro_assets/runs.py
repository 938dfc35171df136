"""Runs that died holding the warehouse pool: found, failed and their slots freed; a waiting run says so.

Every warehouse-writing step claims the one slot of the ``warehouse`` pool
(``dagster.yaml``: ``pools.default_limit: 1``). A run killed with SIGKILL
(OOM killer, ``kill -9``, a lost container) never gives its slot back, and
Dagster 1.13 then lets every later run wait for it forever, polling in a busy
loop that ignores SIGTERM. This module closes that hole for the CLI
(``dagster job execute``) and the daemon alike:

* :data:`warehouse_executor` is the in-process executor the code location
  uses. It tags each run with the host and process that executes it
  (:data:`WORKER_TAG`). When a step finds the pool full, it looks at the runs
  holding it: a run that has finished, or whose process on this host is gone,
  is marked failed and its slots are freed, and the step claims the slot.
  A step waiting for a live run logs what it waits for and since when (every
  :data:`LOG_EVERY` seconds), sleeps instead of spinning, and stops on
  SIGTERM/SIGINT.
* ``python -m metro_assets.runs free-pool`` does the same from a shell
  (``--all`` frees every slot of the pool, for a holder on another host).

Examples
--------
>>> from dagster import DagsterInstance
>>> with DagsterInstance.ephemeral() as instance:
...     free_dead_runs(instance, "warehouse")
[]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

from dagster import DagsterInstance, executor
from dagster._core.definitions.executor_definition import IN_PROC_CONFIG, _core_in_process_executor_creation
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.execute_plan import inner_plan_execution_iterator
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from sqlalchemy import event as sqlalchemy_event
from dagster._utils.interrupts import check_captured_interrupt

POOL = "warehouse"  # the default of METRO_WAREHOUSE_POOL
WORKER_TAG = "metro/worker"  # "<host>:<pid>:<process start ticks>" of the process executing the run
LOG_EVERY = 30.0             # seconds between "still waiting" lines
CHECK_EVERY = 5.0            # seconds between looks at whether the holders are still alive
FREE_COMMAND = "python -m metro_assets.runs free-pool"  # documented in docs/OPERATIONS.md


# -- who holds the pool, and are they alive -------------------------------------------------------

def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_tag() -> str:
    """This process, as :data:`WORKER_TAG` records it."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or ''}"


def _process_gone(tag: str) -> bool | None:
    """True if the tagged process no longer runs, False if it does, None if it is on another host."""
    try:
        host, pid_text, ticks = tag.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return bool(ticks) and _start_ticks(pid) not in (None, ticks)  # the pid now belongs to another process


@dataclass(frozen=True)
class Holder:
    """A run holding (or queued for) slots of a pool, and why it is dead (None: alive or unknown)."""

    run_id: str
    steps: tuple[str, ...]
    worker: str | None
    dead: str | None


def holders(instance: DagsterInstance, pool: str = POOL) -> list[Holder]:
    """The runs with a claimed slot or a pending claim in ``pool``, each judged dead or alive."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    steps: dict[str, list[str]] = {}
    for slot in [*info.claimed_slots, *info.pending_steps]:
        if slot.step_key not in steps.setdefault(slot.run_id, []):  # a claimed slot is also a pending step
            steps[slot.run_id].append(slot.step_key)
    found = []
    for run_id, keys in steps.items():
        run = instance.get_run_by_id(run_id)
        worker = run.tags.get(WORKER_TAG) if run else None
        if run is None:
            dead = "the run no longer exists"
        elif run.status in FINISHED_STATUSES:
            dead = f"the run ended ({run.status.value})"
        elif worker and _process_gone(worker):
            dead = f"its process (pid {worker.rsplit(':', 2)[1]}) is gone"
        else:
            dead = None
        found.append(Holder(run_id, tuple(keys), worker, dead))
    return found


def free_dead_runs(instance: DagsterInstance, pool: str = POOL, everything: bool = False) -> list[Holder]:
    """Fail the dead runs holding ``pool`` and free their slots (``everything``: every holder's).

    Returns the holders freed.
    """
    freed = []
    for holder in holders(instance, pool):
        if holder.dead is None and not everything:
            continue
        run = instance.get_run_by_id(holder.run_id)
        if run is not None and run.status not in FINISHED_STATUSES:
            reason = holder.dead or "its slots were freed by hand"
            instance.report_run_failed(run, f"Run worker died: {reason}; freed its {pool} pool slots.")
        instance.event_log_storage.free_concurrency_slots_for_run(holder.run_id)
        freed.append(holder)
    return freed


# -- the executor -----------------------------------------------------------------------------------

class WatchfulConcurrencyContext(InstanceConcurrencyContext):
    """Dagster's slot claims, plus: free dead holders, say what we wait for, sleep, honour SIGTERM.

    Dagster 1.13's ``interval_to_next_pending_claim_check`` never returns a
    positive number (``min([0, ...])``), so a blocked run polls the database
    in a tight loop: this one returns the real wait, at most one second so an
    interrupt is seen quickly.
    """

    def __init__(self, instance: DagsterInstance, dagster_run, log: Callable[[str], None]):
        super().__init__(instance, dagster_run)
        self._log = log
        self._waiting_since: dict[str, float] = {}
        self._logged_at: dict[str, float] = {}
        self._checked_at: dict[str, float] = {}

    def claim(self, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        if check_captured_interrupt():  # SIGTERM/SIGINT while waiting: stop, do not wait on
            raise DagsterExecutionInterruptedError()
        if super().claim(concurrency_key, step_key, step_priority):
            self._waiting_since.pop(step_key, None)
            return True
        now = time.time()
        self._waiting_since.setdefault(step_key, now)
        if now - self._checked_at.get(step_key, 0.0) >= CHECK_EVERY:  # are the holders alive? (a holder may die
            self._checked_at[step_key] = now                          # while we wait, too)
            freed = free_dead_runs(self._instance, concurrency_key)
            for holder in freed:
                self._log(f"Freed the {concurrency_key} pool slot of run {holder.run_id} ({holder.dead}); "
                          "marked it failed.")
            if freed:
                self._pending_timeouts.pop(step_key, None)  # claim again now, not after the back-off
                if super().claim(concurrency_key, step_key, step_priority):
                    self._waiting_since.pop(step_key, None)
                    return True
        if now - self._logged_at.get(step_key, 0.0) >= LOG_EVERY:
            self._logged_at[step_key] = now
            self._log(self._waiting_line(concurrency_key, step_key, now))
        return False

    def _waiting_line(self, pool: str, step_key: str, now: float) -> str:
        since = self._waiting_since[step_key]
        others = [h for h in holders(self._instance, pool) if h.run_id != self._run_id]
        held = "; ".join(f"run {h.run_id} ({h.worker or 'unknown process'}, step {', '.join(h.steps)})"
                         for h in others) or "no other run (the slot is being handed over)"
        started = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"Step {step_key} waits for the {pool} pool since {started} ({now - since:.0f} s); "
                f"held by {held}. If that run is dead and was not freed, run: {FREE_COMMAND} "
                f"(see docs/OPERATIONS.md).")

    def interval_to_next_pending_claim_check(self) -> float:
        if not self._pending_claims:
            return 0.0
        waits = [ready - time.time() for ready in self._pending_timeouts.values()]
        return min(1.0, max(0.05, min(waits, default=0.05)))


def _execution_iterator(job_context, execution_plan, instance_concurrency_context=None) -> Iterator:
    with WatchfulConcurrencyContext(job_context.instance, job_context.dagster_run,
                                    job_context.log.info) as context:
        yield from inner_plan_execution_iterator(job_context, execution_plan, context)


class WarehouseExecutor(InProcessExecutor):
    """The in-process executor, with :class:`WatchfulConcurrencyContext` for the pool slots.

    ``InProcessExecutor.execute`` hard-wires Dagster's concurrency context;
    this is the same method with ours, after tagging the run with its worker.
    """

    def execute(self, plan_context, execution_plan):
        instance, run_id = plan_context.instance, plan_context.dagster_run.run_id
        instance.add_run_tags(run_id, {WORKER_TAG: worker_tag()})  # lets the next run tell if we died
        step_keys = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(plan_context, f"Executing steps in process (pid: {os.getpid()})",
                                        event_specific_data=EngineEventData.in_process(os.getpid(), step_keys))
        yield from iter(ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=_execution_iterator,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
                step_dependency_config=self.step_dependency_config,
            ),
        ))
        yield DagsterEvent.engine_event(plan_context, f"Finished steps in process (pid: {os.getpid()})",
                                        event_specific_data=EngineEventData.in_process(os.getpid(), step_keys))


@executor(name="in_process", config_schema=IN_PROC_CONFIG)
def warehouse_executor(init_context) -> WarehouseExecutor:
    """Dagster's in-process executor (same name and config) that frees the pool slots of dead runs."""
    core = _core_in_process_executor_creation(init_context.executor_config)
    return WarehouseExecutor(retries=core.retries, step_dependency_config=core.step_dependency_config)


# -- the instance's event log -----------------------------------------------------------------------

class QuickSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log without an fsync per event, and with its connections kept open.

    A single-run backfill of the raw tables over 180 days records ~2,600
    events. Dagster's SQLite event log opens a new connection for each write
    (index and run shard), and SQLite's default makes each commit, and the
    checkpoint when the connection closes, an fsync: that was most of a CLI
    run's time (docs/OPERATIONS.md, *What a day costs*). Here the pragma is
    ``synchronous=OFF`` and each shard's engine (a small connection pool) is
    kept for the process. A killed process loses nothing (the OS has the
    pages); an OS crash or power cut can lose or damage the newest run
    history, never the warehouse.
    """

    KEPT = 8  # shards whose engines stay open (the index and the newest runs)

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._engines: dict[str, object] = {}

    def _engine(self, shard: str):
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard), pool_size=1, max_overflow=4,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            sqlalchemy_event.listen(engine, "connect", _no_fsync)
            while len(self._engines) >= self.KEPT:  # the oldest shard's connections go
                self._engines.pop(next(iter(self._engines))).dispose()
        self._engines[shard] = engine  # most recently used last
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        # SqliteEventLogStorage._connect, with a kept engine and the pragma on each new connection
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def _close_engines(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def wipe(self) -> None:
        self._close_engines()  # the shard files are deleted: no connection may outlive them
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()


def _no_fsync(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=OFF")


class QuickSqliteStorage(DagsterSqliteStorage):
    """The default SQLite instance storage (same files under ``DAGSTER_HOME``) with the quick event log.

    ``dagster.yaml``: ``storage: {custom: {module: metro_assets.runs, class: QuickSqliteStorage,
    config: {base_dir: {env: DAGSTER_HOME}}}}``.
    """

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = QuickSqliteEventLogStorage(os.path.join(base_dir, "history", "runs", ""))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "QuickSqliteStorage":
        return cls(inst_data=inst_data, **config_value)


# -- the command ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m metro_assets.runs free-pool [POOL] [--all]`` on the instance of ``$DAGSTER_HOME``."""
    parser = argparse.ArgumentParser(prog="python -m metro_assets.runs",
                                     description="Free the warehouse pool slots of runs that died holding them.")
    commands = parser.add_subparsers(dest="command", required=True)
    free = commands.add_parser("free-pool", help="fail dead runs holding the pool and free their slots")
    free.add_argument("pool", nargs="?", default=os.environ.get("METRO_WAREHOUSE_POOL", "").strip() or POOL,
                      help="the pool (default: METRO_WAREHOUSE_POOL, else warehouse)")
    free.add_argument("--all", action="store_true",
                      help="free every slot of the pool, also of runs that look alive (e.g. on another host)")
    args = parser.parse_args(argv)
    if not os.environ.get("DAGSTER_HOME"):
        print("DAGSTER_HOME is not set: point it at the instance (make ui uses .dagster_home)", file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        freed = free_dead_runs(instance, args.pool, everything=args.all)
        for holder in freed:
            print(f"freed run {holder.run_id} ({holder.dead or 'freed with --all'}): steps {', '.join(holder.steps)}")
        alive = [h for h in holders(instance, args.pool)]
        for holder in alive:
            print(f"kept run {holder.run_id}: its process {holder.worker or '(unknown)'} is alive; "
                  "stop it, or use --all")
        if not freed and not alive:
            print(f"the {args.pool} pool is free")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
