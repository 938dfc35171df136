"""Load for the concurrency tests: client threads hammering a running API and checking every response.

Reusable for any publisher of snapshots (the synthetic writer here, the real
``daily_pipeline`` later): give it the server URL, the customer ids to ask for
and a ``check(body) -> str | None`` that says what is wrong with a response
(e.g. rows from two snapshots), and read ``errors`` and ``bodies`` afterwards.
"""

import random
import threading
from collections.abc import Callable, Sequence

import httpx

Check = Callable[[dict], "str | None"]


class Hammer:
    """Client threads sending single, batch GET and batch POST requests until stopped.

    Use as a context manager: requests run while the ``with`` block runs.
    Every response must be 200 and pass ``check`` (applied to a single response
    and to each customer of a batch); anything else lands in ``errors``.
    """

    def __init__(self, url: str, customer_ids: Sequence[int], check: Check, threads: int = 4, seed: int = 0):
        self.url = url
        self.customer_ids = list(customer_ids)
        self.check = check
        self.errors: list[str] = []
        self.bodies: list[dict] = []  # every single response and every customer of a batch
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(seed + i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> "Hammer":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _record(self, what: str, response: httpx.Response) -> None:
        if response.status_code != 200:
            self.errors.append(f"{what}: HTTP {response.status_code} {response.text[:200]}")
            return
        body = response.json()
        for item in body["customers"] if "customers" in body else [body]:
            problem = self.check(item)
            if problem:
                self.errors.append(f"{what}: {problem}")
            self.bodies.append(item)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                kind = rng.random()
                try:
                    if kind < 0.6:
                        customer = rng.choice(self.customer_ids)
                        response = client.get("/recommendations", params={"customer_id": customer})
                        self._record(f"single {customer}", response)
                    elif kind < 0.8:
                        ids = rng.sample(self.customer_ids, 20)
                        self._record("batch GET", client.get("/recommendations/batch", params={"customer_ids": ids}))
                    else:
                        ids = rng.sample(self.customer_ids, 50)
                        self._record("batch POST", client.post("/recommendations/batch", json=ids))
                except httpx.HTTPError as exc:
                    self.errors.append(f"transport error: {exc!r}")
                with self._lock:
                    self.requests += 1
