"""Dashboards in headless Chromium through Playwright: Debian's ``chromium`` (``executable_path``), no download.

``with chromium() as browser: page = new_page(browser); page.goto(url); wait_for_text(page, "...")``.
The page helpers read the text of the page *and of its iframes*: the ZenML dashboard shows an HTML
visualization in a sandboxed ``srcdoc`` iframe, which Chromium runs out of process (Playwright reaches it
as a frame of the page).
"""

from __future__ import annotations

import contextlib
import io
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
# The charts a document shows, whatever their encoding: <img> (PNG or SVG files, decoded) or inline <svg>,
# more than 200 px wide (icons and logos are smaller), outermost <svg> only.
_CHARTS = (
    "Array.from(document.querySelectorAll('img, svg')).filter(e => e.getBoundingClientRect().width > 200"
    " && (e.tagName.toLowerCase() === 'img' ? e.complete && e.naturalWidth > 0 : !e.parentElement.closest('svg')))"
)
CHART_COUNT_JS = f"{_CHARTS}.length"
# Scroll the document so its first chart is at the top (8 px above it); the chart count.
FIRST_CHART_TO_TOP_JS = (
    f"(() => {{ const charts = {_CHARTS}; if (charts.length) {{ charts[0].scrollIntoView({{block: 'start'}});"
    " window.scrollBy(0, -8); } return charts.length; })()"
)


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


def screenshot(page, path: Path, *, max_width: int = 1280, colors: int = 256) -> Path:
    """A small PNG of the viewport at ``path`` (its directory created), the way the README's images are made.

    The page is shot as PNG whatever its charts are (PNG or SVG), scaled down to ``max_width`` when wider,
    reduced to a palette of ``colors`` (no dithering: flat UI colours stay flat) and saved optimized: a
    1280x800 dashboard page comes to well under 150 KB instead of 300-600 KB."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(page.screenshot(type="png"))).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    image.quantize(colors=colors, dither=Image.Dither.NONE).save(path, format="PNG", optimize=True)
    return path
