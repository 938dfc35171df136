"""Drive `dagster dev` the way an operator does: a real webserver and daemon, its GraphQL API, a real browser.

:class:`DagsterDev` starts ``dagster dev`` in its own session (so every
process it spawns, run workers included, can be found and stopped),
talks to the webserver's GraphQL endpoint, and stops everything like a
Ctrl-C in a terminal would. :func:`render_page` loads a page in headless
Chromium and returns the rendered DOM.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from metro_assets_tests.ops.tools import tool

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = tool("dagster")  # of the environment running the tests, not a fixed .venv
CHROMIUM = Path("/usr/bin/chromium")
LOCATION = "metro_assets.definitions"  # the code location's name under `dagster dev -m`
REPOSITORY = "__repository__"
REPO_SELECTOR = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION}


class UIError(AssertionError):
    """The UI or its GraphQL API did not do what an operator would expect."""


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``: what `dagster dev` started, run workers included."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            members.append(int(entry))
    return members


def stop_session(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 30) -> list[int]:
    """Signal the process's session (it started one), wait ``grace`` s, SIGKILL what is left; returns what was left."""
    sid = process.pid
    try:
        os.killpg(sid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and session_members(sid):
        process.poll()  # reap the leader itself
        time.sleep(0.3)
    left = session_members(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    return left


def _default_signals():
    # A shell may start us with SIGINT ignored (background jobs); Ctrl-C must reach dagster dev.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def wait_for(condition, timeout: float, what: str, interval: float = 1.0):
    """Poll ``condition()`` until it returns a truthy value; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise UIError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class DagsterDev:
    """``dagster dev -m metro_assets.definitions`` (webserver + daemon) on a loopback port."""

    def __init__(self, home: Path, env: dict, log: Path, port: int | None = None):
        self.home, self.env, self.log_path = home, env, log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.tmp = log.parent  # scratch space next to the log (browser profiles, screenshots)
        self.timings: dict[str, float] = {}

    def start(self, timeout: float = 180):
        """Start and wait until the code location is loaded; on failure stop and show the log."""
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "dagster.yaml", self.home / "dagster.yaml")  # as `make ui` does
        env = {**self.env, "DAGSTER_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(DAGSTER), "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_default_signals,
        )
        try:
            wait_for(self._loaded, timeout, f"dagster dev to serve {self.url} with {LOCATION} loaded")
        except BaseException:
            self.stop()
            raise UIError(f"dagster dev did not come up; its log ends:\n{self.log_tail()}") from None

    def _loaded(self) -> bool:
        if self.process.poll() is not None:
            raise UIError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            data = self.graphql("{ repositoriesOrError { __typename ... on RepositoryConnection "
                                "{ nodes { name location { name } } } } }", timeout=10)
        except (OSError, UIError):
            return False
        nodes = data["repositoriesOrError"].get("nodes") or []
        return any(n["location"]["name"] == LOCATION for n in nodes)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        """POST a query to the webserver's GraphQL endpoint; raise on GraphQL errors."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:
            raise UIError(f"GraphQL HTTP {exc.code}: {exc.read()[:500]!r}") from None
        if payload.get("errors"):
            raise UIError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def members(self) -> list[int]:
        return session_members(self.process.pid) if self.process else []

    def stop(self, grace: float = 45) -> dict:
        """Ctrl-C the whole session (as a terminal does), wait, then SIGKILL whatever is left.

        Returns what happened: ``left_after_sigint`` lists the processes still
        alive after ``grace`` seconds (they were killed), ``seconds`` the time taken.
        """
        if self.process is None:
            return {"left_after_sigint": [], "seconds": 0.0, "returncode": None}
        started = time.monotonic()
        left = stop_session(self.process, signal.SIGINT, grace)
        self._log.close()
        result = {"left_after_sigint": left, "seconds": time.monotonic() - started,
                  "returncode": self.process.returncode}
        self.process = None
        return result


def chromium_command(user_data_dir: Path) -> list[str]:
    """Headless Chromium that talks to nothing but the loopback webserver."""
    return [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no request leaves the machine
        f"--user-data-dir={user_data_dir}",
    ]


def render_page(url: str, workdir: Path, *, window: str = "2560,7200", budget_ms: int = 15000,
                screenshot: Path | None = None, timeout: float = 120) -> str:
    """The DOM of ``url`` once its scripts have run (``--dump-dom``), or a PNG at ``screenshot``.

    Each call uses a fresh profile; the browser runs in its own session and is
    killed with it if it overstays ``timeout``.
    """
    if not CHROMIUM.exists():
        raise UIError(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    profile = workdir / f"chromium-profile-{time.monotonic_ns()}"
    output = ["--screenshot=" + str(screenshot)] if screenshot else ["--dump-dom"]
    command = [*chromium_command(profile), f"--window-size={window}", f"--virtual-time-budget={budget_ms}",
               *output, url]
    process = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UIError(f"chromium did not finish {url} within {timeout:.0f} s") from None
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its zygote and renderer helpers too
        except ProcessLookupError:
            pass
        process.wait()
        shutil.rmtree(profile, ignore_errors=True)
    if process.returncode != 0:
        raise UIError(f"chromium exited with {process.returncode}: {err.decode(errors='replace')[-800:]}")
    return out.decode(errors="replace")


class _NodeLabels(HTMLParser):
    """Collects the text inside each element whose class marks an asset node's name."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.labels, self._depth, self._text = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        if self._depth:
            self._depth += 1
        elif "AssetNode_assetName" in (dict(attrs).get("class") or ""):
            self._depth, self._text = 1, []

    def handle_endtag(self, tag):
        if self._depth and tag not in self.VOID:
            self._depth -= 1
            if not self._depth:
                self.labels.append("".join(self._text).strip())

    def handle_data(self, data):
        if self._depth:
            self._text.append(data)


def asset_node_labels(dom: str) -> list[str]:
    """The names written in the asset graph's nodes of a rendered DOM (Dagster 1.13's markup)."""
    parser = _NodeLabels()
    parser.feed(dom)
    return [label for label in parser.labels if label]


def shows(name: str, labels: list[str]) -> bool:
    """Whether a node label shows ``name``, in full or shortened in the middle ("interact…_features")."""
    for label in labels:
        if label == name:
            return True
        if "…" in label:
            head, tail = label.split("…", 1)
            if name.startswith(head) and name.endswith(tail) and len(head) + len(tail) < len(name):
                return True
    return False
