"""The local dashboards: ZenML's server on 127.0.0.1, the MLflow UI, and a headless browser.

Everything here runs as a subprocess on loopback, so a caller can give each process its own
environment (``ZENML_CONFIG_PATH``) and stop it by pid (or ``zenml logout --local``):

* :func:`start_zenml_dashboard` / :func:`stop_zenml_dashboard`: ``zenml login --local``
  without Docker, no browser pop-up, the onboarding survey skipped; returns the URL.
* :func:`start_mlflow_ui` / :func:`stop_mlflow_ui`: ``mlflow ui`` for the stack's tracking URI.
* :func:`render_page`: one page in headless Chromium, its DOM text and a screenshot.
* :class:`Browser`: headless Chromium driven over the DevTools protocol, for single-page
  apps whose views open on a click (the ZenML run page opens an artifact's visualization in a
  side sheet, which no URL addresses).

The ZenML server serves the sqlite store of the client's ``ZENML_CONFIG_PATH``: runs made
before it started show up in it, and the client is connected to it until
:func:`stop_zenml_dashboard`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import requests

HOST = "127.0.0.1"
ZENML_PORT = 8237
MLFLOW_PORT = 5000
CHROMIUM = "/usr/bin/chromium"
# Headless, offline, no first-run work; a fresh --user-data-dir is added per browser.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
]
QUIET_ENV = {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "ZENML_ENABLE_REPO_INIT_WARNINGS": "false",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
}
ONBOARDING_DONE = {"email_opted_in": False, "user_metadata": {"finished_onboarding_survey": True}}


class DashboardError(RuntimeError):
    """A dashboard process did not start, or a page did not show what was expected."""


def _env(env: Optional[Mapping[str, str]] = None, config_path: Optional[str] = None) -> Dict[str, str]:
    merged = {**os.environ, **(env or {}), **QUIET_ENV}
    if config_path:
        merged["ZENML_CONFIG_PATH"] = str(config_path)
    return merged


def _executable(name: str) -> str:
    """The console script next to this interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DashboardError(f"`{name}` is not installed in this environment")
    return found


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (for a server started next)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, process: Optional[subprocess.Popen] = None) -> None:
    """Poll ``url`` until it answers HTTP 200 (raise if ``process`` exits first)."""
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DashboardError(f"the process behind {url} exited with code {process.returncode}")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            last = type(error).__name__
        time.sleep(0.25)
    raise DashboardError(f"{url} did not answer within {timeout:.0f}s ({last})")


# -- ZenML ------------------------------------------------------------------------------
def skip_onboarding(url: str, timeout: float = 15.0) -> None:
    """Mark the (local, no-auth) server's user as done with the first-visit survey."""
    response = requests.put(f"{url}/api/v1/current-user", json=ONBOARDING_DONE, timeout=timeout)
    if response.status_code != 200:
        raise DashboardError(f"could not skip the onboarding survey: HTTP {response.status_code} {response.text[:200]}")


def start_zenml_dashboard(host: str = HOST, port: int = ZENML_PORT, *, config_path: Optional[str] = None,
                          env: Optional[Mapping[str, str]] = None, timeout: float = 240.0,
                          restart: bool = False) -> str:
    """Start the local ZenML server (a daemon, no Docker) on ``host:port``, connect the client
    of ``config_path`` (default: $ZENML_CONFIG_PATH, else ~/.config/zenml) to it, skip the
    onboarding survey and return the dashboard URL (``http://127.0.0.1:8237`` by default).

    Runs ``zenml login --local`` in a subprocess, so call it before this process reads the ZenML
    client configuration (a Client made earlier still points at the old store). The daemon
    outlives this process: stop it with :func:`stop_zenml_dashboard` (also after a failure here,
    which can leave it running). ``restart`` passes ``--restart``."""
    command = [_executable("zenml"), "login", "--local", "--ip-address", host, "--port", str(port)]
    if restart:
        command.append("--restart")
    result = subprocess.run(command, env=_env(env, config_path), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=timeout)
    url = f"http://{host}:{port}"
    if result.returncode != 0:
        raise DashboardError(f"`zenml login --local` failed (exit {result.returncode}):\n"
                             f"{_tail(result.stdout + result.stderr)}")
    wait_for_http(f"{url}/health", timeout=60)
    skip_onboarding(url)
    return url


def stop_zenml_dashboard(*, config_path: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                         timeout: float = 120.0) -> None:
    """``zenml logout --local``: stop the local server and point the client back at its sqlite store."""
    result = subprocess.run([_executable("zenml"), "logout", "--local"], env=_env(env, config_path),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise DashboardError(f"`zenml logout --local` failed (exit {result.returncode}):\n"
                             f"{_tail(result.stdout + result.stderr)}")


def zenml_server_pid(config_path: Optional[str] = None) -> Optional[int]:
    """The local server daemon's pid, from ``<config>/zen_server/daemon/service.pid`` (None if absent)."""
    root = Path(config_path or os.environ.get("ZENML_CONFIG_PATH") or Path.home() / ".config" / "zenml")
    try:
        return int((root / "zen_server" / "daemon" / "service.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def zenml_run_url(url: str, run_id: str, project: str = "default") -> str:
    """The dashboard page of a pipeline run (its DAG)."""
    return f"{url}/projects/{project}/runs/{run_id}?tab=overview"


def zenml_api(url: str, path: str, **params: Any) -> Dict[str, Any]:
    """GET ``/api/v1/<path>`` of a local (no-auth) server."""
    response = requests.get(f"{url}/api/v1/{path.lstrip('/')}", params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def zenml_latest_run(url: str, pipeline_name: str) -> Dict[str, Any]:
    """The newest run of ``pipeline_name`` on the server (REST ``/api/v1/runs``)."""
    for run in zenml_api(url, "runs", sort_by="desc:created", size=50)["items"]:
        if run["name"].startswith(f"{pipeline_name}-"):
            return run
    raise DashboardError(f"the ZenML server at {url} has no run of pipeline {pipeline_name!r}")


def zenml_step_output(url: str, run_id: str, step: str, output: str) -> Dict[str, Any]:
    """The artifact version a step of a run produced as ``output`` (REST, hydrated step)."""
    steps = zenml_api(url, "steps", pipeline_run_id=run_id, size=100)["items"]
    match = [s for s in steps if s["name"] == step]
    if not match:
        raise DashboardError(f"run {run_id} has no step {step!r}")
    outputs = zenml_api(url, f"steps/{match[0]['id']}", hydrate=True)["resources"]["outputs"]
    if not outputs.get(output):
        raise DashboardError(f"step {step!r} of run {run_id} has no output {output!r}")
    return outputs[output][0]


def open_artifact_visualization(browser: "Browser", url: str, run_id: str, artifact_name: str, *,
                                html: bool = True, timeout: float = 90.0) -> str:
    """Show an artifact's visualization the way a person does on the dashboard: open the run's
    page, click the artifact's node in the DAG, the sheet's *Visualization* tab and, for HTML,
    *Load Preview* (the dashboard asks before rendering HTML). Return the page's text."""
    sheet = "[role=dialog] [role=tab], [role=dialog] button"
    browser.open(zenml_run_url(url, run_id))
    browser.wait_for_text(artifact_name, timeout=timeout)
    browser.click_text(artifact_name, selector="button", timeout=timeout)
    browser.wait_for(lambda t: "Materializer" in t, timeout=timeout, what="the artifact sheet")
    browser.click_text("Visualization", selector=sheet, timeout=timeout)
    if html:
        browser.click_text("Load Preview", selector=sheet, timeout=timeout)
    return browser.text()


# -- MLflow -----------------------------------------------------------------------------
@dataclass
class MlflowUI:
    process: subprocess.Popen
    url: str
    backend_store_uri: str
    log_path: Optional[str] = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 120.0) -> "MlflowUI":
        wait_for_http(f"{self.url}/health", timeout=timeout, process=self.process)
        return self


def start_mlflow_ui(backend_store_uri: str, host: str = HOST, port: int = MLFLOW_PORT, *,
                    log_path: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                    timeout: float = 180.0, wait: bool = True, job_execution: bool = False) -> MlflowUI:
    """Start ``mlflow ui`` for ``backend_store_uri`` (its own process group) and, with ``wait``,
    wait until it answers (else call ``.wait_ready()`` later: it takes 15-60 s to import).

    MLflow 3's background job runner (GenAI scorers, trace roll-ups) is off unless
    ``job_execution``: browsing runs does not need it, and it is one more process importing
    MLflow (about 40% of the start-up time here)."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            [_executable("mlflow"), "ui", "--backend-store-uri", backend_store_uri, "--host", host,
             "--port", str(port), "--workers", "1"],
            env={**_env(env), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if job_execution else "false"},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log_path:
            log.close()
    ui = MlflowUI(process=process, url=f"http://{host}:{port}", backend_store_uri=backend_store_uri, log_path=log_path)
    if not wait:
        return ui
    try:
        ui.wait_ready(timeout)
    except Exception:
        stop_mlflow_ui(ui)
        raise
    return ui


def stop_mlflow_ui(ui: MlflowUI, timeout: float = 10.0) -> None:
    """Stop the MLflow UI's process group (SIGTERM, then SIGKILL)."""
    _stop_group(ui.process, timeout)


def mlflow_run_url(url: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI page of a run (overview: tags, metrics table, parameters)."""
    return f"{url}/#/experiments/{experiment_id}/runs/{run_id}"


# MLflow 3.17's UI opens an assistant side panel on a first visit; keep it closed (browser prefs).
MLFLOW_UI_PREFS_JS = (
    "try { localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
    " localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true'); } catch (e) {}"
)


def _stop_group(process: subprocess.Popen, timeout: float) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


# -- headless Chromium --------------------------------------------------------------------
class _TextExtractor(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: List[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        if tag in self.SKIP:
            self.skipping += 1

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if not self.skipping:
            self.parts.append(data)


def html_text(document: str) -> str:
    """The visible text of an HTML document, whitespace collapsed."""
    parser = _TextExtractor()
    parser.feed(document)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


def chromium_available(path: str = CHROMIUM) -> bool:
    return os.access(path, os.X_OK)


def render_page(url: str, screenshot: Optional[str] = None, *, budget_ms: int = 8000, timeout: float = 60.0,
                window_size: str = "1440,1000", chromium: str = CHROMIUM) -> str:
    """Load ``url`` in headless Chromium (``--virtual-time-budget`` lets a SPA render), return the
    text of the rendered DOM and, if ``screenshot`` is given, write a PNG there."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window_size}",
                f"--virtual-time-budget={budget_ms}"]
        result = subprocess.run(["timeout", "-k", "5", str(int(timeout)), *base, "--dump-dom", url],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise DashboardError(f"chromium --dump-dom {url} failed (exit {result.returncode}): {_tail(result.stderr, 5)}")
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            shot = subprocess.run(["timeout", "-k", "5", str(int(timeout)), *base, f"--screenshot={screenshot}", url],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if shot.returncode != 0 or not Path(screenshot).is_file():
                raise DashboardError(f"chromium --screenshot {url} failed (exit {shot.returncode}): {_tail(shot.stderr, 5)}")
    return html_text(result.stdout)


_FIND_TEXT_JS = r"""
((text, selector) => {
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const candidates = Array.from(document.querySelectorAll(selector)).filter(visible);
  const exact = candidates.filter(el => (el.innerText || '').trim() === text);
  const loose = candidates.filter(el => (el.innerText || '').includes(text));
  const pick = (exact.length ? exact : loose).sort((a, b) => a.innerText.length - b.innerText.length)[0];
  if (!pick) return null;
  pick.scrollIntoView({block: 'center', inline: 'center'});
  const r = pick.getBoundingClientRect();
  return {x: r.left + r.width / 2, y: r.top + r.height / 2};
})
"""


@dataclass
class Browser:
    """Headless Chromium under the DevTools protocol (``websockets`` sync client, one tab).

    ``with Browser() as browser: browser.open(url); browser.wait_for_text("..."); browser.click_text("...")``
    The process (its own group) is stopped on exit, whatever happened.
    """

    chromium: str = CHROMIUM
    window_size: str = "1440,1000"
    timeout: float = 300.0  # hard limit for the whole browser process (`timeout` wraps it)
    process: Optional[subprocess.Popen] = field(default=None, init=False)
    _profile: Optional[str] = field(default=None, init=False)
    _socket: Any = field(default=None, init=False)
    _exit_stack: Optional[contextlib.ExitStack] = field(default=None, init=False)
    _next_id: int = field(default=0, init=False)

    def __enter__(self) -> "Browser":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def start(self) -> None:
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="chromium-cdp-")
        self.process = subprocess.Popen(
            ["timeout", "-k", "5", str(int(self.timeout)), self.chromium, *CHROMIUM_FLAGS,
             f"--user-data-dir={self._profile}", f"--window-size={self.window_size}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        port_file, deadline = Path(self._profile) / "DevToolsActivePort", time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise DashboardError("headless chromium did not open its DevTools port")
            time.sleep(0.1)
        try:
            port = int(port_file.read_text().split()[0])
            pages = [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                     if t.get("type") == "page"]
            self._exit_stack = contextlib.ExitStack()
            self._socket = self._exit_stack.enter_context(
                connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._exit_stack is not None:
            try:
                self._exit_stack.close()
            except Exception:  # noqa: BLE001 - the browser may already be gone
                pass
            self._exit_stack = self._socket = None
        if self.process is not None:
            _stop_group(self.process, 5)
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def call(self, method: str, timeout: float = 30.0, session_id: Optional[str] = None, **params: Any) -> Dict[str, Any]:
        """One DevTools command (to the page, or to an attached target's ``session_id``);
        events arriving meanwhile are dropped."""
        self._next_id += 1
        message_id = self._next_id
        message: Dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session_id:
            message["sessionId"] = session_id
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DashboardError(f"chromium did not answer {method} within {timeout:.0f}s")
            message = json.loads(self._socket.recv(timeout=remaining))
            if message.get("id") == message_id:
                if "error" in message:
                    raise DashboardError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if result.get("exceptionDetails"):
            raise DashboardError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate_in_frames(self, expression: str) -> List[Any]:
        """Evaluate ``expression`` in every iframe of the page; one value per frame.

        Chromium runs sandboxed iframes (the ZenML dashboard shows HTML visualizations in a
        ``sandbox=""`` ``srcdoc`` iframe) in their own process: they are separate DevTools
        targets, reached here by attaching to each iframe target of this browser."""
        values = []
        for target in self.call("Target.getTargets").get("targetInfos", []):
            if target.get("type") != "iframe":
                continue
            try:
                session = self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
                try:
                    result = self.call("Runtime.evaluate", session_id=session, expression=expression,
                                       returnByValue=True, awaitPromise=True)
                    values.append(result.get("result", {}).get("value"))
                finally:
                    self.call("Target.detachFromTarget", sessionId=session)
            except DashboardError:  # the frame went away meanwhile
                continue
        return values

    def text(self) -> str:
        """The rendered text (``innerText``) of the page, then of each iframe in it."""
        body = "document.body ? document.body.innerText : ''"
        parts = [self.evaluate(body) or ""] + [v or "" for v in self.evaluate_in_frames(body)]
        return re.sub(r"[ \t\r\f\v]+", " ", "\n".join(parts))

    def add_init_script(self, source: str) -> None:
        """Run ``source`` in every document before its own scripts (e.g. to set localStorage)."""
        self.call("Page.addScriptToEvaluateOnNewDocument", source=source)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0, what: str = "condition") -> str:
        deadline, text = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            text = self.text()
            if predicate(text):
                return text
            time.sleep(0.25)
        raise DashboardError(f"the page did not show {what} within {timeout:.0f}s; it shows (end): {text[-1500:]!r}")

    def wait_for_text(self, *needles: str, timeout: float = 30.0) -> str:
        """Wait until every needle is in the page text; return the text."""
        return self.wait_for(lambda t: all(n in t for n in needles), timeout, what=" and ".join(map(repr, needles)))

    def click_text(self, text: str, selector: str = "button, a, [role=tab], [role=button]", timeout: float = 30.0) -> None:
        """Click the smallest element matching ``selector`` whose text is (or contains) ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            point = self.evaluate(f"{_FIND_TEXT_JS}({json.dumps(text)}, {json.dumps(selector)})")
            if point:  # a real mouse click: some widgets (React Flow nodes) ignore element.click()
                self.click_at(point["x"], point["y"])
                return
            time.sleep(0.25)
        raise DashboardError(f"nothing clickable with text {text!r} appeared within {timeout:.0f}s")

    def click_at(self, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: str, full_page: bool = False) -> str:
        params: Dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(data))
        return path
