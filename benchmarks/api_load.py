"""Load benchmark of the recommendations API: one uvicorn worker, driven over loopback from another process.

What it does, in one run:

1. builds a default-scale serving snapshot (50,000 customers x 10 offers x
   ``--run-dates`` run dates, synthetic but realistic in shape) or takes
   ``--snapshot``;
2. starts ``python -m api.server`` (uvicorn, one worker, uvloop + httptools + the API's guards, access log
   off) as a subprocess on 127.0.0.1;
3. drives it from a separate process with a bounded number of requests over
   ``--concurrency`` keep-alive connections (closed loop: each connection sends
   its next request when the previous answer arrived), for ``/health`` (the
   ceiling), single lookups of random known customers, batches of 100 (GET and
   POST), single lookups while a new snapshot of the same size is published
   and swapped in; then ``/health`` and single lookups again with the fast path
   off (``METRO_API_FAST_PATH=0``: every request through FastAPI's machinery);
4. reports requests/s and p50/p95/p99/max latency, the CPU seconds the server
   and the client each used (a client near one CPU-second per second is
   saturated and the figures are a floor), and checks the targets.

Load generators: ``python`` is a minimal asyncio HTTP/1.1 client (uvloop,
pre-built requests, no httpx: httpx costs ~10x more CPU per request and would
measure itself); ``wrk`` (Debian's ``apt-get install wrk``, C, much lighter)
runs the same scenarios for a fixed duration with a Lua script drawing random
customers. Both run by default when wrk is installed. Both share the box's two
cores with the server, so the server never has a core to itself.

Usage::

    .venv/bin/python benchmarks/api_load.py --out benchmarks/results/api_load.json
    .venv/bin/python benchmarks/api_load.py --snapshot data/serving.parquet --client wrk
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {"single_p95_ms": 10.0, "single_p99_ms": 25.0, "single_vs_health": 0.5}
HZ = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------------------------------
# The load generator (runs in its own process: `api_load.py client ...`)


def _requests_for(scenario: str, ids: list[int], count: int, batch: int, seed: int) -> list[bytes]:
    """Pre-built HTTP/1.1 requests, so the client spends its CPU on I/O only."""
    rng = random.Random(seed)
    host = b"Host: 127.0.0.1\r\n"
    if scenario == "health":
        return [b"GET /health HTTP/1.1\r\n" + host + b"\r\n"] * count
    if scenario == "single":
        line = b"GET /recommendations?customer_id=%d HTTP/1.1\r\n%s\r\n"
        return [line % (rng.choice(ids), host) for _ in range(count)]
    out = []
    for _ in range(count):
        chosen = rng.sample(ids, batch)
        if scenario == "batch_get":
            query = "&".join(f"customer_ids={c}" for c in chosen).encode()
            out.append(b"GET /recommendations/batch?%s HTTP/1.1\r\n%s\r\n" % (query, host))
        else:
            body = json.dumps(chosen).encode()
            out.append(
                b"POST /recommendations/batch HTTP/1.1\r\n%sContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (host, len(body), body)
            )
    return out


async def _drive(port: int, requests: list[bytes], concurrency: int) -> dict:
    latencies: list[int] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    next_index = 0

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < len(requests):
                request = requests[next_index]
                next_index += 1
                started = time.perf_counter_ns()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = None
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length is None:
                    raise RuntimeError(f"response without content-length: {head[:200]!r}")
                await reader.readexactly(length)
                latencies.append(time.perf_counter_ns() - started)
                status = int(head[9:12])
                statuses[status] = statuses.get(status, 0) + 1
        except Exception as exc:  # reported, not raised: the run's figures say how many failed
            errors.append(repr(exc))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"latencies_ns": latencies, "statuses": statuses, "errors": errors, "wall_s": wall}


def run_client(args: argparse.Namespace) -> None:
    """Entry point of the client process: writes its results as JSON to ``args.result``."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    ids = [int(x) for x in Path(args.ids).read_text().split()]
    warmup = _requests_for(args.scenario, ids, min(1000, args.requests), args.batch, args.seed + 1)
    asyncio.run(_drive(args.port, warmup, args.concurrency))
    requests = _requests_for(args.scenario, ids, args.requests, args.batch, args.seed)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(_drive(args.port, requests, args.concurrency))
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    result["client_cpu_s"] = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    Path(args.result).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------------------------
# The harness


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)  # nearest rank
    return sorted_values[index]


def _server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m api.server`` as a subprocess, the way ``make serve`` starts it (plus --no-access-log)."""

    def __init__(self, snapshot: Path, fast_path: bool, log: Path):
        self.port = _free_port()
        env = {**os.environ, "METRO_SERVING": str(snapshot), "METRO_API_FAST_PATH": "1" if fast_path else "0"}
        self.command = [sys.executable, "-m", "api.server", "--host", "127.0.0.1", "--port", str(self.port),
                        "--no-access-log"]
        self.log = log.open("w")
        started = time.perf_counter()
        self.proc = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        import httpx

        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - started > 300:
                raise SystemExit(f"api_load: the server did not start; see {log}")
            time.sleep(0.2)
        self.startup_s = time.perf_counter() - started

    def memory_mb(self, field: str) -> float:
        """``VmRSS`` (now) or ``VmHWM`` (peak) of the server, in MB."""
        return int(Path(f"/proc/{self.proc.pid}/status").read_text().split(f"{field}:")[1].split()[0]) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class Publisher(threading.Thread):
    """Publishes a new snapshot (same rows, new model_version) during a run and times the swap.

    ``publish_s``: writing the file (write_snapshot); ``swap_s``: from the start until
    ``/health`` reports the new model version (the server loaded and swapped it).
    """

    def __init__(self, snapshot: Path, port: int, delay: float, round_: int):
        import polars as pl

        from metro_assets.serving import read_snapshot

        super().__init__(daemon=True)
        self.snapshot, self.port, self.delay, self.version = snapshot, port, delay, f"bench-reload-{round_}"
        self.publish_s = self.swap_s = None
        self.finished_at = None
        # Read before the run starts, so only the publication itself overlaps the measurement.
        self.frame = read_snapshot(snapshot).with_columns(model_version=pl.lit(self.version))

    def run(self) -> None:
        import httpx

        from metro_assets.serving import write_snapshot

        frame = self.frame
        time.sleep(self.delay)
        started = time.perf_counter()
        write_snapshot(frame, self.snapshot)
        self.publish_s = time.perf_counter() - started
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
            while client.get("/health").json()["model_version"] != self.version:
                time.sleep(0.05)
        self.swap_s = time.perf_counter() - started
        self.finished_at = time.perf_counter()


def python_run(
    server: Server, scenario: str, requests: int, concurrency: int, batch: int, ids_file: Path,
    publisher: Publisher | None = None,
) -> dict:
    """One scenario with the Python client in its own process (``publisher``: started alongside)."""
    cpu_before = _server_cpu(server.proc.pid)
    if publisher:
        publisher.start()
    result = ids_file.with_name("client-result.json")
    subprocess.run(
        [sys.executable, __file__, "client", "--port", str(server.port), "--scenario", scenario, "--requests",
         str(requests), "--concurrency", str(concurrency), "--batch", str(batch), "--ids", str(ids_file),
         "--result", str(result)],
        check=True,
    )
    client_done = time.perf_counter()
    if publisher:
        publisher.join()
    server_cpu = _server_cpu(server.proc.pid) - cpu_before  # includes the client's warm-up requests
    raw = json.loads(result.read_text())
    ms = sorted(x / 1e6 for x in raw["latencies_ns"])
    ok = raw["statuses"].get("200", 0)
    served = len(ms) + min(1000, requests)  # the client's warm-up requests are in the server's CPU time too
    return {
        **_reload_fields(publisher, client_done),
        "server_us_per_request": round(server_cpu / served * 1e6),
        "requests": len(ms), "ok": ok, "errors": len(ms) - ok + len(raw["errors"]),
        "rps": round(len(ms) / raw["wall_s"]), "wall_s": round(raw["wall_s"], 2),
        "p50_ms": round(_percentile(ms, 50), 2), "p95_ms": round(_percentile(ms, 95), 2),
        "p99_ms": round(_percentile(ms, 99), 2), "max_ms": round(ms[-1], 2) if ms else None,
        "server_cpu_s": round(server_cpu, 2), "client_cpu_s": round(raw["client_cpu_s"], 2),
    }


WRK_LUA = r"""
local ids = {}
local scenario = "%(scenario)s"
local batch = %(batch)d
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
math.randomseed(%(seed)d)
local function pick() return ids[math.random(1, #ids)] end
request = function()
  if scenario == "health" then return wrk.format("GET", "/health") end
  if scenario == "single" then return wrk.format("GET", "/recommendations?customer_id=" .. pick()) end
  local chosen = {}
  for i = 1, batch do chosen[i] = pick() end
  if scenario == "batch_get" then
    return wrk.format("GET", "/recommendations/batch?customer_ids=" .. table.concat(chosen, "&customer_ids="))
  end
  return wrk.format("POST", "/recommendations/batch", {["Content-Type"] = "application/json"},
                    "[" .. table.concat(chosen, ",") .. "]")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "socket_errors": %%d, ' ..
    '"p50_us": %%d, "p95_us": %%d, "p99_us": %%d, "max_us": %%d}\n', summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
"""


def _reload_fields(publisher: Publisher | None, client_done: float) -> dict:
    if publisher is None:
        return {}
    return {"reload_publish_s": round(publisher.publish_s, 2), "reload_swap_s": round(publisher.swap_s, 2),
            "reload_within_run": publisher.finished_at <= client_done}


def wrk_run(
    server: Server, scenario: str, seconds: int, concurrency: int, batch: int, ids_file: Path, workdir: Path,
    publisher: Publisher | None = None,
) -> dict:
    """One scenario with wrk (one thread; duration-bounded) and the same random customers."""
    script = workdir / f"{scenario}.lua"
    script.write_text(WRK_LUA % {"scenario": scenario, "batch": batch, "ids": ids_file, "seed": 7})
    url = f"http://127.0.0.1:{server.port}"
    subprocess.run(["wrk", "-t1", f"-c{concurrency}", "-d2s", "-s", str(script), url], capture_output=True, check=True)
    cpu_before = _server_cpu(server.proc.pid)
    started = time.perf_counter()
    children_before = _children_cpu()
    if publisher:
        publisher.start()
    done = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - started
    if publisher:
        publisher.join()
    server_cpu = _server_cpu(server.proc.pid) - cpu_before
    wrk_cpu = _children_cpu() - children_before  # wrk has been waited for; the server has not
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK "))
    raw = json.loads(line[4:])
    return {
        **_reload_fields(publisher, started + wall),
        "server_us_per_request": round(server_cpu / raw["requests"] * 1e6),
        "requests": raw["requests"], "ok": raw["requests"] - raw["non2xx"],
        "errors": raw["non2xx"] + raw["socket_errors"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6)), "wall_s": round(wall, 2),
        "p50_ms": round(raw["p50_us"] / 1000, 2), "p95_ms": round(raw["p95_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2), "max_ms": round(raw["max_us"] / 1000, 2),
        "server_cpu_s": round(server_cpu, 2), "client_cpu_s": round(wrk_cpu, 2),
    }


def build_snapshot(path: Path, customers: int, run_dates: int) -> dict:
    from metro_assets.serving import write_snapshot
    from metro_assets_tests.api.snapshots import synthetic_snapshot

    started = time.perf_counter()
    frame = synthetic_snapshot(customers=customers, offers_per_customer=10, run_dates=run_dates, model_version="bench")
    write_snapshot(frame, path)
    return {"built_s": round(time.perf_counter() - started, 2)}


def bench_api(args: argparse.Namespace) -> dict:
    """Run every scenario; returns the report (also printed as a table)."""
    import polars as pl

    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="api_load_"))
    snapshot = workdir / "serving.parquet"  # a copy: the reload scenario rewrites it
    if args.snapshot:
        shutil.copy(args.snapshot, snapshot)
        info = {"source": str(args.snapshot)}
    else:
        info = build_snapshot(snapshot, args.customers, args.run_dates)
    frame = pl.read_parquet(snapshot, columns=["run_date", "customer_id"])
    newest = frame.get_column("run_date").max()
    ids = frame.filter(pl.col("run_date") == newest).get_column("customer_id").unique().to_list()
    ids_file = workdir / "ids.txt"
    ids_file.write_text("\n".join(map(str, ids)))
    info.update(path=str(snapshot), rows=frame.height, run_dates=frame.get_column("run_date").n_unique(),
                customers_newest=len(ids), bytes=snapshot.stat().st_size)
    clients = [c for c in args.client.split(",") if c]
    if "wrk" in clients and not shutil.which("wrk"):
        print("api_load: wrk not installed (apt-get install wrk); Python client only", file=sys.stderr)
        clients.remove("wrk")
    plan = [("health", True), ("single", True), ("batch_get", True), ("batch_post", True),
            ("single_reload", True), ("health", False), ("single", False)]
    results, servers = [], {}
    try:
        for fast_path in (True, False):
            server = Server(snapshot, fast_path, workdir / f"server-{fast_path}.log")
            servers[fast_path] = {"startup_s": round(server.startup_s, 2), "command": server.command}
            try:
                for scenario, fp in plan:
                    if fp != fast_path:
                        continue
                    batch = args.batch if scenario.startswith("batch") else 1
                    requests = scenario.removesuffix("_reload")  # same requests, plus a publication
                    for client in clients:
                        publisher = None
                        if scenario.endswith("_reload"):
                            publisher = Publisher(snapshot, server.port, 1.0, len(results))
                        if client == "python":
                            n = args.requests if batch == 1 else args.batch_requests
                            n = 5 * n if publisher else n  # long enough to contain the reload
                            row = python_run(server, requests, n, args.concurrency, batch, ids_file, publisher)
                        else:
                            row = wrk_run(server, requests, args.wrk_seconds, args.concurrency, batch, ids_file,
                                          workdir, publisher)
                        row = {"client": client, "scenario": scenario, "fast_path": fast_path,
                               "concurrency": args.concurrency, "batch": batch, **row}
                        results.append(row)
                        print(_row_text(row), flush=True)
            finally:
                # Steady state after the runs; the peak is the load of a snapshot (Polars' validation and join).
                servers[fast_path].update(rss_mb=round(server.memory_mb("VmRSS")),
                                          peak_rss_mb=round(server.memory_mb("VmHWM")))
                server.stop()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "snapshot": info, "servers": servers, "results": results, "targets": TARGETS,
        "verdict": _verdict(results), "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "method": "closed loop over keep-alive connections on 127.0.0.1; one uvicorn worker; access log off",
    }
    return report


def _row_text(row: dict) -> str:
    mode = "fast path" if row["fast_path"] else "FastAPI only"
    return (f"{row['client']:6} {row['scenario']:10} {mode:12} c={row['concurrency']:<3} {row['rps']:>7} req/s  "
            f"p50 {row['p50_ms']:6.2f}  p95 {row['p95_ms']:6.2f}  p99 {row['p99_ms']:6.2f}  "
            f"max {row['max_ms']:7.2f} ms  "
            f"errors {row['errors']}  server cpu {row['server_cpu_s']} s  client cpu {row['client_cpu_s']} s")


def _verdict(results: list[dict]) -> dict:
    verdict = {}
    for client in {r["client"] for r in results}:
        rows = {(r["scenario"], r["fast_path"]): r for r in results if r["client"] == client}
        single, health = rows.get(("single", True)), rows.get(("health", True))
        if not single or not health:
            continue
        verdict[client] = {
            "single_p95_ok": single["p95_ms"] < TARGETS["single_p95_ms"],
            "single_p99_ok": single["p99_ms"] < TARGETS["single_p99_ms"],
            "single_vs_health": round(single["rps"] / health["rps"], 2),
            "single_vs_health_ok": single["rps"] >= TARGETS["single_vs_health"] * health["rps"],
            "no_errors": all(r["errors"] == 0 for r in rows.values()),
        }
        plain_single, plain_health = rows.get(("single", False)), rows.get(("health", False))
        if plain_single and plain_health:  # the same comparison with every request through FastAPI
            verdict[client]["fastapi_only_single_vs_health"] = round(plain_single["rps"] / plain_health["rps"], 2)
            verdict[client]["fastapi_only_single_p95_ok"] = plain_single["p95_ms"] < TARGETS["single_p95_ms"]
    return verdict


def markdown(report: dict) -> str:
    lines = ["| client | scenario | path | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | server CPU s "
             "| server us/req | client CPU s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        name = r["scenario"] if r["batch"] == 1 else f"{r['scenario']} ({r['batch']} ids)"
        if "reload_swap_s" in r:
            name = (f"single, new snapshot published (written in {r['reload_publish_s']} s, served after "
                    f"{r['reload_swap_s']} s{'' if r['reload_within_run'] else ', after the run ended'})")
        lines.append(f"| {r['client']} | {name} | {'fast path' if r['fast_path'] else 'FastAPI only'} | {r['rps']} | "
                     f"{r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['errors']} | "
                     f"{r['server_cpu_s']} | {r['server_us_per_request']} | {r['client_cpu_s']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        parser = argparse.ArgumentParser(prog="api_load.py client")
        for name in ("--port", "--requests", "--concurrency", "--batch"):
            parser.add_argument(name, type=int, required=True)
        parser.add_argument("--scenario", required=True)
        parser.add_argument("--ids", required=True)
        parser.add_argument("--result", required=True)
        parser.add_argument("--seed", type=int, default=11)
        run_client(parser.parse_args(argv[1:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", help="serve this snapshot instead of building a synthetic one")
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--run-dates", type=int, default=7, help="run dates in the synthetic snapshot (7: 3.5M rows)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20_000, help="Python client: requests per single/health run")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batch-requests", type=int, default=1_000, help="Python client: requests per batch run")
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--client", default="python,wrk", help="comma-separated: python, wrk")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (snapshot, logs, Lua scripts)")
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args(argv)
    report = bench_api(args)
    print()
    print(markdown(report))
    print(json.dumps(report["verdict"], indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
