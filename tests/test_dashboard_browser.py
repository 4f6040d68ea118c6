"""The dashboards in a real browser: ZenML's run page shows our evaluation report, MLflow's UI the run's metrics.

Everything runs as processes on 127.0.0.1 with a ZenML config of its own under tmp_path
(``zenml login --local`` switches the client it runs in to the server, so the pytest session's
store is never touched): the local ZenML server (daemon, no Docker), ``python run.py --variant rf
--demo-data-if-empty`` against it, ``mlflow ui`` on the stack's tracking URI, and Debian's chromium
driven by Playwright (tests/browser/). Three screenshots (1280x800, palette PNGs: ``pages.screenshot``), the
evaluation report's charts in the ZenML dashboard, the MLflow run's metrics and its ROC chart among the run's
artifacts, go to $CHURN_SCREENSHOTS_DIR (``CHURN_SCREENSHOTS_DIR=docs/img`` remakes the README's) or a tmp
dir; a failing page is shot to test-artifacts/dashboard/. Every process started here is stopped at the
end, by pid or ``zenml logout --local``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from churn.dashboard import DashboardError, start_zenml_dashboard, stop_zenml_dashboard
from churn.net import free_port
from tests.browser.pages import (
    CHART_COUNT_JS,
    FIRST_CHART_TO_TOP_JS,
    MLFLOW_UI_PREFS_JS,
    chromium,
    chromium_path,
    frame_values,
    new_page,
    open_artifact_visualization,
    screenshot,
    wait_for,
    wait_for_text,
)
from tests.browser.servers import mlflow_run_url, start_mlflow_ui, zenml_latest_run, zenml_server_pid, zenml_step_output

REPO = Path(__file__).resolve().parents[1]
FAILED_SHOTS = REPO / "test-artifacts" / "dashboard"
VIEWPORT = {"width": 1280, "height": 800}  # the README's screenshots

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.skipif(
        chromium_path() is None,
        reason="chromium is missing: install Debian's chromium "
        "(apt-get update && apt-get install -y chromium) to run the browser test",
    ),
]


def _pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_group(pid: int, must_contain: str) -> None:
    """SIGTERM then SIGKILL the process group of ``pid``, only if it is still ours (cmdline check)."""
    if must_contain not in _pid_cmdline(pid):
        return
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:  # not a group leader: the process alone
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and must_contain in _pid_cmdline(pid):
            time.sleep(0.1)
        if must_contain not in _pid_cmdline(pid):
            return


def _stop_endpoints(config_path: Path) -> None:
    """The deploy step leaves our endpoint server running (a daemon): stop it by the pid it recorded."""
    for state_file in config_path.glob("local_stores/endpoints/*/*/state.json"):
        try:
            pid = json.loads(state_file.read_text()).get("pid")
        except (OSError, ValueError):
            continue
        if pid:
            _kill_group(int(pid), str(state_file.parent))


# Printed by the train/evaluate steps: by then the stack's MLflow sqlite store exists with its schema.
TRACKER_READY = re.compile(r"^(Trained |Evaluation: )", re.M)


def _run_pipeline(config_path: Path, env: dict, root: Path):
    """``python run.py --variant rf --demo-data-if-empty`` against the server; return its output and
    the MLflow UI, started as soon as the run's tracking store is initialised (``mlflow ui`` takes
    30-60 s to import on two busy cores: it overlaps the rest of the run instead of following it)."""
    process = subprocess.Popen(
        [sys.executable, "run.py", "--variant", "rf", "--demo-data-if-empty"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    watchdog = threading.Timer(600, process.kill)
    watchdog.start()
    lines, ui = [], None
    try:
        for line in process.stdout:
            lines.append(line)
            if ui is None and TRACKER_READY.match(line):
                stores = list(config_path.glob("local_stores/*/mlflow.db"))
                if len(stores) == 1:
                    ui = start_mlflow_ui(
                        f"sqlite:///{stores[0]}", free_port(), env=env, wait=False, log_path=str(root / "mlflow-ui.log")
                    )
        process.wait(30)
    except BaseException:
        if ui is not None:
            ui.stop()
        raise
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        (root / "run.log").write_text("".join(lines))
    output = "".join(lines)
    if process.returncode != 0:
        if ui is not None:
            ui.stop()
        pytest.fail(f"run.py exited with {process.returncode}:\n{output[-4000:]}")
    return output, ui


class Timings(dict):
    def mark(self, name: str, started: float) -> None:
        self[name] = round(time.monotonic() - started, 1)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the three screenshots go: $CHURN_SCREENSHOTS_DIR (e.g. docs/img, to commit them) or a tmp dir."""
    return Path(os.environ.get("CHURN_SCREENSHOTS_DIR") or tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """Local ZenML server + one rf pipeline run against it + (starting) MLflow UI; all stopped afterwards."""
    root = tmp_path_factory.mktemp("dashboard")
    config_path = root / "zenml"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZENML_LOCAL_STORES")}
    env.update(
        {
            "ZENML_CONFIG_PATH": str(config_path),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_AUTO_OPEN_DASHBOARD": "false",
            "ZENML_LOGGING_VERBOSITY": "WARN",
            "ZENML_ENABLE_REPO_INIT_WARNINGS": "false",
            "OMP_NUM_THREADS": "1",
            "MLFLOW_ENABLE_TELEMETRY": "false",
            "PYTHONPATH": str(REPO),
        }
    )
    timings = Timings()
    state = {"root": root, "env": env, "timings": timings}
    started = time.monotonic()
    server_pid = None
    ui = None
    try:
        url = start_zenml_dashboard(port=free_port(), config_path=str(config_path), env=env)
        server_pid = zenml_server_pid(str(config_path))
        timings.mark("zenml_login", started)
        assert (
            requests.get(f"{url}/api/v1/current-user", timeout=10)
            .json()["metadata"]["user_metadata"]
            .get("finished_onboarding_survey")
            is True
        )

        step = time.monotonic()
        output, ui = _run_pipeline(config_path, env, root)
        timings.mark("pipeline", step)
        tracking_uri = re.search(r"mlflow ui --backend-store-uri (\S+)", output)
        mlflow_run = re.search(r"MLflow run ([0-9a-f]{32})", output)
        assert tracking_uri and mlflow_run, f"run summary without MLflow lines:\n{output[-3000:]}"
        if ui is None or ui.backend_store_uri != tracking_uri.group(1):
            if ui is not None:
                ui.stop()
            ui = start_mlflow_ui(
                tracking_uri.group(1), free_port(), log_path=str(root / "mlflow-ui.log"), env=env, wait=False
            )
        state.update(url=url, ui=ui, mlflow_run_id=mlflow_run.group(1), started=started)
        yield state
    finally:
        server_pid = server_pid or zenml_server_pid(str(config_path))
        ui = state.get("ui") or ui  # the MLflow test may have restarted it
        for stop in (
            lambda: ui and ui.stop(),
            lambda: _stop_endpoints(config_path),
            lambda: stop_zenml_dashboard(config_path=str(config_path), env=env, timeout=120),
            lambda: server_pid and _kill_group(server_pid, str(config_path)),
        ):
            try:
                stop()
            except Exception as error:  # noqa: BLE001 - keep stopping the rest
                print(f"cleanup: {error}")
        timings["total"] = round(time.monotonic() - started, 1)
        print(f"\ndashboard test timings (s): {timings}")


def test_zenml_dashboard_renders_the_evaluation_report(live, browser, shots):
    url = live["url"]
    run = zenml_latest_run(url, "churn_rf_training")
    assert run["body"]["status"] == "completed"
    artifact = zenml_step_output(url, run["id"], "evaluate", "evaluation_report")
    started = time.monotonic()
    page = new_page(browser, **VIEWPORT)
    try:
        open_artifact_visualization(page, url, run["id"], "evaluation_report")
        text = wait_for_text(page, "Evaluation report", "Gate verdict:", "Metrics (test set)", timeout=60)
    except Exception:
        screenshot(page, FAILED_SHOTS / "zenml-evaluation-report-FAILED.png")
        raise
    # the sheet is this run's artifact version, and the report in the dashboard's iframe is complete
    assert artifact["id"] in text
    assert re.search(r"Gate verdict: \S", text), text[-3000:]
    for metric in ("accuracy", "precision", "recall", "f1_score", "roc_auc"):
        assert re.search(rf"{metric}\s+\d\.\d{{4}}", text), f"{metric} missing from the rendered report"
    charts = frame_values(page, CHART_COUNT_JS)
    assert max(charts or [0]) >= 4, f"expected ROC, PR, confusion-matrix and importance charts, decoded: {charts}"
    frame_values(page, FIRST_CHART_TO_TOP_JS)  # the report's preview is a short frame: show its charts
    page.wait_for_timeout(300)
    shot = screenshot(page, shots / "zenml-evaluation-report.png")
    page.context.close()
    live["timings"].mark("zenml_browser", started)
    assert shot.stat().st_size > 20_000  # a rendered report, not a blank page


def _mlflow_ui(live):
    """The run's MLflow UI, ready (started during the run; once more if it exited meanwhile)."""
    ui = live["ui"]
    try:
        ui.wait_ready(timeout=240)
    except DashboardError:
        if ui.process.poll() is None:
            raise
        # it exited (started while the run was still writing the store?): once more, now the run is over
        print(f"mlflow ui exited early ({ui.process.returncode}); restarting it")
        ui = live["ui"] = start_mlflow_ui(
            ui.backend_store_uri,
            free_port(),
            env=live["env"],
            log_path=str(live["root"] / "mlflow-ui-2.log"),
            timeout=240,
        )
    live["timings"].setdefault("mlflow_ui_ready_after_start", round(time.monotonic() - live["started"], 1))
    return ui


def _mlflow_run(ui, run_id: str) -> dict:
    return requests.get(f"{ui.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=30).json()["run"]


def test_mlflow_ui_shows_the_run_metrics(live, browser, shots):
    started = time.monotonic()
    ui = _mlflow_ui(live)
    run = _mlflow_run(ui, live["mlflow_run_id"])
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert "accuracy" in metrics
    page = new_page(browser, **VIEWPORT, init_script=MLFLOW_UI_PREFS_JS)
    page.goto(mlflow_run_url(ui.url, run["info"]["experiment_id"], run["info"]["run_id"]))
    try:
        text = wait_for(
            page,
            lambda t: re.search(r"Metrics \(\d+\)", t) and re.search(r"\baccuracy\s+0\.\d", t),
            timeout=120,
            what="the run's metrics table",
        )
    except Exception:
        screenshot(page, FAILED_SHOTS / "mlflow-run-metrics-FAILED.png")
        raise
    # the value the browser shows is the logged one (MLflow prints the float as JavaScript does)
    assert re.search(rf"\baccuracy\s+{re.escape(repr(metrics['accuracy']))}\b", text), text[:3000]
    assert run["info"]["run_id"] in text
    shot = screenshot(page, shots / "mlflow-run-metrics.png")
    page.context.close()
    live["timings"].mark("mlflow_browser", started)
    assert shot.stat().st_size > 20_000


def test_mlflow_ui_shows_the_evaluation_charts_among_the_run_artifacts(live, browser, shots):
    """The run's Artifacts tab lists the evaluation charts the evaluate step logged and previews the ROC curve
    (found by name through the REST API, whatever its file format)."""
    ui = _mlflow_ui(live)
    run = _mlflow_run(ui, live["mlflow_run_id"])
    listed = requests.get(
        f"{ui.url}/api/2.0/mlflow/artifacts/list",
        params={"run_id": run["info"]["run_id"], "path": "evaluation"},
        timeout=30,
    ).json()
    charts = {Path(f["path"]).stem: f["path"] for f in listed.get("files", []) if not f["is_dir"]}
    assert {"roc_curve", "precision_recall_curve", "confusion_matrix"} <= set(charts), listed
    page = new_page(browser, **VIEWPORT, init_script=MLFLOW_UI_PREFS_JS)
    page.goto(
        f"{mlflow_run_url(ui.url, run['info']['experiment_id'], run['info']['run_id'])}/artifacts/{charts['roc_curve']}"
    )
    try:
        text = wait_for(
            page,
            lambda t: all(Path(path).name in t for path in charts.values()) and page.evaluate(CHART_COUNT_JS) >= 1,
            timeout=120,
            what="the evaluation artifacts with the ROC curve previewed",
        )
    except Exception:
        screenshot(page, FAILED_SHOTS / "mlflow-run-artifacts-FAILED.png")
        raise
    assert charts["roc_curve"] in text  # the previewed file's path heads the preview
    shot = screenshot(page, shots / "mlflow-run-artifacts.png")
    page.context.close()
    assert shot.stat().st_size > 20_000
