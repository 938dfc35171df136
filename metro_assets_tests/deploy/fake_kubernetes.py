"""A stand-in for the Kubernetes API server on the loopback interface: it records the Jobs it is sent.

There is no Kubernetes cluster on this machine. The K8sRunLauncher talks to
the API server through the official ``kubernetes`` client; pointed (by a
kubeconfig) at this server, it sends the real request a cluster would get:
``POST /apis/batch/v1/namespaces/<ns>/jobs`` with the run worker's Job. The
server keeps each Job as sent and answers what the client needs to carry on
(the Job back; a Job's status; an empty pod list). It schedules nothing: the
test plays the kubelet by running the Job's container command itself.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/?]+))?(?:/status)?(?:\?.*)?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:\?.*)?$")


class FakeKubernetes:
    """The API server: ``jobs`` maps (namespace, name) to the Job body as sent; ``requests`` lists what came."""

    def __init__(self):
        self.jobs: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                with fake._lock:
                    fake.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                match = JOBS.match(self.path)
                if not match or match.group(2):
                    return self._answer(404, _status(404, f"no route {self.path}"))
                namespace, name = match.group(1), body["metadata"]["name"]
                with fake._lock:
                    fake.jobs[(namespace, name)] = body
                self._answer(201, {**body, "status": {}})

            def do_GET(self):
                with fake._lock:
                    fake.requests.append(("GET", self.path))
                match = JOBS.match(self.path)
                if match and match.group(2):
                    job = fake.jobs.get((match.group(1), match.group(2)))
                    if job is None:
                        return self._answer(404, _status(404, f"job {match.group(2)} not found"))
                    return self._answer(200, {**job, "status": {"active": 1}})
                if PODS.match(self.path):
                    return self._answer(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []})
                self._answer(404, _status(404, f"no route {self.path}"))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeKubernetes":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig whose one context is this server (plain HTTP on loopback, a bearer token)."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
        }))
        return path


def _status(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
