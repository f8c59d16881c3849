"""A real browser on a tiny run: report.html and the dashboard render, with no console errors.

Headless Chromium (Debian's ``chromium``; CI installs it in ``.ci/run``) is
driven over the Chrome DevTools Protocol with ``websocket-client``: no driver
binary to match with the browser. The tests skip when Chromium is absent.

Screenshots go to the test's temporary folder, and are also copied to
``$PARETOKD_SCREENSHOTS`` when that is set, to look at them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from finished_run import finished_run

from paretokd import report
from paretokd.records import RunRecord

CHROMIUM = os.environ.get("PARETOKD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container: the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",  # any free port, written to DevToolsActivePort
]
WIDTH = 1280
RENDERED = (
    "[...document.querySelectorAll('.js-plotly-plot')]"
    ".filter(g => g._fullLayout && g.querySelector('.main-svg')).length"
)

# A whole-page screenshot grows the window for a moment, and plotly redraws its
# responsive figures on resize (parcoords through software WebGL, slowly): a shot
# taken mid-redraw shows half a figure. The figures have fixed heights and the width
# does not change, so their resize handlers are unhooked first.
FREEZE_PLOTS = """
document.querySelectorAll('.js-plotly-plot').forEach(gd => {
    const handler = gd._responsiveChartHandler;
    if (handler) window.removeEventListener('resize', handler);
});
"""
PAGE_SIZE = "document.querySelectorAll('*').length + ':' + document.body.scrollHeight"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


class Browser:
    """One headless Chromium page, spoken to over the DevTools Protocol."""

    def __init__(self, binary: str) -> None:
        import websocket

        self.profile = Path(tempfile.mkdtemp(prefix="paretokd-chromium-"))
        # Chromium keeps its crash database under XDG_CONFIG_HOME (~/.config): keep
        # that in the throwaway profile too, so a test run leaves nothing in $HOME.
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.profile)}
        env["XDG_CACHE_HOME"] = str(self.profile)
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t["type"] == "page")
        # No Origin header: Chromium refuses DevTools clients from other origins.
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], suppress_origin=True, timeout=60
        )
        self._id = 0
        self.events: list[dict[str, Any]] = []
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)  # console messages, exceptions, page events

    def eval(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.eval(expression)
            except RuntimeError as exc:  # e.g. no document.body yet while a page loads
                value, last = None, exc
            else:
                last = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {expression} ({last})")
            time.sleep(0.2)

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                args = params.get("args", [])
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in args))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details["text"])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                errors.append(f"{entry['text']} ({entry.get('url', '')})")
        return errors

    def screenshot(self, path: Path) -> Path:
        """The whole page, not only the window."""
        self._settle()
        self.eval(FREEZE_PLOTS)
        height = int(self.eval("Math.ceil(document.documentElement.scrollHeight)"))
        data = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": WIDTH, "height": min(height, 16000), "scale": 1},
        )
        path.write_bytes(base64.b64decode(data["data"]))
        keep = os.environ.get("PARETOKD_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / path.name)
        return path

    def _settle(self, quiet: float = 1.0, timeout: float = 20) -> None:
        """Wait until the page's elements and height stop changing for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            now = self.eval(PAGE_SIZE)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.2)

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser(CHROMIUM)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def tiny_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_teacher_dir: Path, corpus_file: Path
) -> Path:
    """A finished tiny run (search, picks, final students, report, artifacts)."""
    return finished_run(tmp_path_factory, tiny_teacher_dir, corpus_file)


def _complete_trials(run: Path) -> int:
    return len(report.load_run(run).trials)


def _trial_markers(div_id: str) -> str:
    """JS: markers drawn for the traces of one marker per trial, from the data and the SVG."""
    return f"""(() => {{
        const gd = document.getElementById({json.dumps(div_id)});
        const traces = gd.querySelectorAll('.scatterlayer .trace');
        let data = 0, drawn = 0;
        gd._fullData.forEach((t, i) => {{
            if (t.meta !== 'trials') return;
            data += t.x.length;
            drawn += traces[t.index] ? traces[t.index].querySelectorAll('.points path').length : 0;
        }});
        return {{data, drawn}};
    }})()"""


def test_report_renders_every_figure_without_errors(
    browser: Browser, tiny_run: Path, tmp_path: Path
) -> None:
    browser.open((tiny_run / "report.html").as_uri())
    # The four figures of the search, and the final distillations' curves.
    browser.wait_for(f"document.readyState === 'complete' && {RENDERED} === 5")

    n = _complete_trials(tiny_run)
    assert browser.eval(_trial_markers("pareto-front")) == {"data": n, "drawn": n}
    assert browser.eval(_trial_markers("latency-vs-params")) == {"data": n, "drawn": n}
    lines = browser.eval(
        "document.getElementById('architectures')._fullData[0].dimensions[0].values.length"
    )
    assert lines == n
    assert browser.eval("document.querySelectorAll('table.picks tr').length") == 1 + 2
    assert browser.eval("document.querySelectorAll('script[src]').length") == 0  # offline
    browser.screenshot(tmp_path / "report.png")
    assert browser.console_errors() == []


@pytest.fixture(scope="module")
def dashboard_url(tiny_run: Path) -> Iterator[str]:
    """``paretokd dashboard --out RUN`` on a free loopback port, stopped afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "paretokd.cli", "dashboard", "--out", str(tiny_run)]
        + ["--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/meta", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"the dashboard did not start:\n{proc.communicate()[0]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _study(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/studies") as resp:
        summaries = json.load(resp)["study_summaries"]
    # The storage also holds the claims (``<study>.finals.<n>``, ``<study>.calibration.<n>``).
    (summary,) = [s for s in summaries if not re.search(r"\.[a-z]+\.\d+$", s["study_name"])]
    with urllib.request.urlopen(f"{url}/api/studies/{summary['study_id']}") as resp:
        return {**json.load(resp), "study_id": summary["study_id"]}


def test_dashboard_shows_our_figures_artifacts_and_note(
    browser: Browser, tiny_run: Path, dashboard_url: str, tmp_path: Path
) -> None:
    study = _study(dashboard_url)
    sid = study["study_id"]
    names = {a["filename"]: a["artifact_id"] for a in study["artifacts"]}
    # Each pick's shipped graph (model.onnx, or model.int8.onnx for an int8 student).
    record = RunRecord.read(tiny_run / "recommendations.json")
    graphs = {f"{p.budget}-{f.onnx.name}" for p in record.picks if (f := record.final_of(p))}
    assert {"report.html", "50ms-latency.json", *graphs} <= set(names) and len(graphs) == 2
    # The report opens from the artifact store, as the dashboard's download link serves it.
    with urllib.request.urlopen(f"{dashboard_url}/artifacts/{sid}/{names['report.html']}") as r:
        assert r.headers["Content-Type"].startswith("text/html")
        assert r.read() == (tiny_run / "report.html").read_bytes()

    browser.open(f"{dashboard_url}/dashboard/studies/{sid}")
    ours = ["pareto-front", "hypervolume", "latency-vs-params", "architectures", "final-curves"]
    ready = " && ".join(
        f"document.getElementById('user-defined-plot:{i}')?._fullLayout" for i in ours
    )
    browser.wait_for(f"!!({ready})")
    browser.wait_for("document.body.innerText.includes('Study Artifacts')")
    n = _complete_trials(tiny_run)
    assert browser.eval(_trial_markers("user-defined-plot:pareto-front")) == {
        "data": n,
        "drawn": n,
    }
    text = browser.eval("document.body.innerText")
    assert "report.html" in text and all(g in text for g in graphs)
    browser.screenshot(tmp_path / "dashboard-study.png")
    assert browser.console_errors() == []

    browser.open(f"{dashboard_url}/dashboard/studies/{sid}/note")
    browser.wait_for("document.body.innerText.includes('Recommendations of tiny')")
    assert browser.eval("document.querySelectorAll('table tr').length") == 1 + 2
    browser.screenshot(tmp_path / "dashboard-note.png")
    assert browser.console_errors() == []
