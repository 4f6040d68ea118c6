"""Dashboards in headless Chromium through Playwright: Debian's ``chromium`` (``executable_path``), no download.

``with chromium() as browser: page = new_page(browser); page.goto(url); wait_for_text(page, "...")``.
The page helpers read the text of the page *and of its iframes*: the ZenML dashboard shows an HTML
visualization in a sandboxed ``srcdoc`` iframe, which Chromium runs out of process (Playwright reaches it
as a frame of the page).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from churn.dashboard import DashboardError
from tests.browser.servers import zenml_run_url

# The browser is Debian's; Playwright must never fetch one (we never run `playwright install` either).
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
]
# MLflow 3.17's UI opens an assistant side panel on a first visit; keep it closed (its localStorage prefs).
MLFLOW_UI_PREFS_JS = (
    "try { localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
    " localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true'); } catch (e) {}"
)
BODY_TEXT_JS = "document.body ? document.body.innerText : ''"


def chromium_path() -> str | None:
    """Debian's chromium on PATH (None if it is not installed)."""
    return shutil.which("chromium")


@contextlib.contextmanager
def chromium(timeout: float = 120.0) -> Iterator[object]:
    """Headless Debian chromium under Playwright; closed (and Playwright's driver stopped) on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise DashboardError("chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS, timeout=timeout * 1000
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, width: int = 1000, height: int = 800, init_script: str | None = None):
    """A page in a fresh context (no shared storage) with a ``width`` x ``height`` viewport."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(60_000)
    if init_script:
        context.add_init_script(init_script)
    return context.new_page()


def frame_values(page, expression: str) -> list[object]:
    """Evaluate ``expression`` in every iframe of the page; one value per frame still attached."""
    from playwright.sync_api import Error

    values = []
    for frame in page.frames:
        if frame is page.main_frame:
            continue
        try:
            values.append(frame.evaluate(expression))
        except Error:  # the frame went away meanwhile
            continue
    return values


def page_text(page) -> str:
    """The rendered text (``innerText``) of the page, then of each iframe in it."""
    parts = [page.evaluate(BODY_TEXT_JS) or ""] + [v or "" for v in frame_values(page, BODY_TEXT_JS)]
    return re.sub(r"[ \t\r\f\v]+", " ", "\n".join(str(p) for p in parts))


def wait_for(page, predicate: Callable[[str], object], timeout: float = 30.0, what: str = "condition") -> str:
    """Poll the page's text (iframes included) until ``predicate`` holds; return the text."""
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        text = page_text(page)
        if predicate(text):
            return text
        page.wait_for_timeout(250)
    raise DashboardError(f"the page did not show {what} within {timeout:.0f}s; it shows (end): {text[-1500:]!r}")


def wait_for_text(page, *needles: str, timeout: float = 30.0) -> str:
    """Wait until every needle is in the page text; return the text."""
    return wait_for(page, lambda t: all(n in t for n in needles), timeout, what=" and ".join(map(repr, needles)))


def open_artifact_visualization(
    page, url: str, run_id: str, artifact_name: str, *, html: bool = True, timeout: float = 90.0
) -> str:
    """Show an artifact's visualization the way a person does on the dashboard: open the run's page, click the
    artifact's node in the DAG, the side sheet's *Visualization* tab and, for HTML, *Load Preview* (the
    dashboard asks before rendering HTML). Return the page's text."""
    ms = timeout * 1000
    page.goto(zenml_run_url(url, run_id))
    # a DAG node is a button named "<artifact> <type>", e.g. "evaluation_report EvaluationReport"
    node = page.get_by_role("button", name=re.compile(rf"^{re.escape(artifact_name)}\b")).filter(visible=True)
    node.first.click(timeout=ms)
    sheet = page.get_by_role("dialog")
    sheet.get_by_text("Materializer").first.wait_for(timeout=ms)
    sheet.get_by_role("tab", name="Visualization").click(timeout=ms)
    if html:
        sheet.get_by_role("button", name="Load Preview").click(timeout=ms)
    return page_text(page)


def screenshot(page, path: Path) -> Path:
    """A PNG of the viewport at ``path`` (its directory created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path
