"""The notebooks as a user meets them: a real Jupyter server, its contents API, its kernels, a browser.

One JupyterLab server per module, started with the command ``make notebooks`` runs (``tools/open_notebooks.py``),
on localhost, a free port and a random token, with its config, data and runtime folders in a temporary directory.
Each notebook is read through ``/api/contents``, a kernel is started for it through ``/api/sessions``, and its code
cells are executed one by one over the kernel's websocket channel (Jupyter messaging protocol v5). Every cell must
finish with status ``ok`` and no ``error`` output, and every cell that draws a figure must return an ``image/png``
output. The browser test loads JupyterLab in headless Chromium with ``01_tour`` open, waits until the notebook's
title is rendered, and keeps a screenshot in ``build/test-artifacts/`` (git-ignored).

``04_real_images`` needs Fashion-MNIST in ``data/fashion-mnist`` and is skipped without it (the reason names the
fetch command). Chromium is Debian's ``chromium`` package, installed here with apt-get when missing and the tests
run as root; otherwise the browser test is skipped with the reason.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
import websocket

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ARTIFACTS = ROOT / "build" / "test-artifacts"
SERVER_START_S = 180  # bounded waits: generous, because the CI machines are small and shared
CELL_TIMEOUT_S = 900
BROWSER_TIMEOUT_S = 240
APT_TIMEOUT_S = 900
# A cell that draws: a pyplot figure (shown by the inline backend at the end of the cell) or a displayed image.
DRAWS = re.compile(r"\bplt\.(subplots|figure|show)\(|\bdisplay\(\s*Image\(")


def load_tool(name: str) -> ModuleType:
    """A module of ``tools/`` (scripts, not a package), imported from its file."""
    spec = importlib.util.spec_from_file_location(f"_tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


open_notebooks = load_tool("open_notebooks")


# Everything here talks to 127.0.0.1: never through a proxy the environment may name (CI machines often have one).
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def local_websocket(url: str, port: int, **options) -> websocket.WebSocket:
    """A websocket to ``127.0.0.1:port`` over a socket we connect ourselves (websocket-client would use a proxy)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    return websocket.create_connection(url, socket=sock, timeout=60, suppress_origin=True, **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A running JupyterLab server: its base URL, token and a small JSON client for its REST API."""

    def __init__(self, proc: subprocess.Popen, port: int, token: str, log: Path):
        self.proc, self.port, self.token, self.log = proc, port, token, log
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: dict | None = None, token: bool = True) -> tuple[int, object]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"token {self.token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with NO_PROXY.open(req, timeout=60) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab started as ``make notebooks`` starts it (plus token, port, --no-browser), stopped at the end."""
    home = tmp_path_factory.mktemp("jupyter")
    token = secrets.token_hex(16)
    port = free_port()
    env = dict(os.environ)
    env.update(
        # Nothing of the user's Jupyter set-up is read or written; the kernel spec comes from the environment.
        JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
        # The kernels import this checkout of collapse, whatever else the environment has installed.
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        OMP_NUM_THREADS="1",
        # What the notebooks compute goes to this test's folder, never to results/ of the checkout, and is computed
        # afresh every time (a store of earlier runs would let a notebook pass without computing anything).
        COLLAPSE_RUNS_OUT=str(home / "runs"), COLLAPSE_STORE=str(home / "store"),
    )
    # JupyterLab's own settings for this server: no autosave (the browser test must never write a notebook back)
    # and no prompt about fetching Jupyter news (no network, and it would cover part of the screenshot).
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab"
    for plugin, value in (("docmanager-extension/plugin", {"autosave": False}),
                          ("apputils-extension/notification", {"fetchNews": "false"})):
        (settings / f"{plugin}.jupyterlab-settings").parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(value))
    open_notebooks.ensure_kernel()
    cmd = open_notebooks.lab_command(
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    )
    log = home / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    server = LabServer(proc, port, token, log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode} before serving:\n{server.log_tail()}")
            try:
                if server.request("GET", "/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {SERVER_START_S} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        try:
            if proc.poll() is None:
                for s in server.request("GET", "/api/sessions")[1] or []:
                    server.request("DELETE", f"/api/sessions/{s['id']}")
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the group we started: the server and any kernel it failed to stop
            proc.wait(timeout=30)


class KernelChannel:
    """Execute code on a server-side kernel over ``/api/kernels/<id>/channels``, collecting notebook outputs."""

    def __init__(self, lab: LabServer, kernel_id: str):
        self.session = uuid.uuid4().hex
        self.ws = local_websocket(
            f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?session_id={self.session}", lab.port,
            header=[f"Authorization: token {lab.token}"],
        )

    def close(self) -> None:
        self.ws.close()

    def execute(self, code: str, timeout: float) -> tuple[dict, list]:
        """Run ``code``; return the ``execute_reply`` content and the outputs, once the kernel is idle again."""
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session, "username": "test",
                  "version": "5.3", "date": datetime.now(UTC).isoformat()}
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        self.ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                                 "channel": "shell", "buffers": []}))
        reply, idle, outputs = None, False, []
        deadline = time.monotonic() + timeout
        while reply is None or not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply within {timeout} s to:\n{code[:500]}")
            self.ws.settimeout(min(left, 30.0))
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if isinstance(raw, bytes):  # binary frames carry comm buffers (widgets), which these notebooks lack
                continue
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if msg["channel"] == "shell" and kind == "execute_reply":
                reply = msg["content"]
            elif kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
            elif kind == "clear_output":
                outputs.clear()
            elif kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append(nbformat.v4.output_from_msg(msg))
        return reply, outputs


def test_server_refuses_requests_without_the_token(lab):
    assert lab.request("GET", "/api/contents", token=False)[0] == 403
    status, listing = lab.request("GET", "/api/contents")
    assert status == 200
    assert sorted(item["name"] for item in listing["content"] if item["type"] == "notebook") == \
        [p.name for p in NOTEBOOKS]


def test_kernel_channel_sees_errors_and_figures(lab):
    """The checks below can fail: an exception comes back as an error, a figure as image/png only when drawn."""
    status, session = lab.request("POST", "/api/sessions", {"path": "scratch.ipynb", "type": "notebook",
                                                             "name": "scratch.ipynb", "kernel": {"name": "python3"}})
    assert status == 201
    channel = KernelChannel(lab, session["kernel"]["id"])
    try:
        reply, outputs = channel.execute("x = 6 * 7\nprint(x)\n1 / 0", CELL_TIMEOUT_S)
        assert reply["status"] == "error" and reply["ename"] == "ZeroDivisionError"
        assert [o.output_type for o in outputs] == ["stream", "error"] and outputs[0].text == "42\n"
        agg = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
        reply, outputs = channel.execute(agg, CELL_TIMEOUT_S)
        assert DRAWS.search(agg) and reply["status"] == "ok"
        assert not [o for o in outputs if "image/png" in o.get("data", {})]
        reply, outputs = channel.execute("%matplotlib inline\nplt.plot([1, 2])\nplt.show()", CELL_TIMEOUT_S)
        assert reply["status"] == "ok" and [o for o in outputs if "image/png" in o.get("data", {})]
    finally:
        channel.close()
        lab.request("DELETE", f"/api/sessions/{session['id']}")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_through_the_server(lab, path):
    if reason := open_notebooks.missing_data(path):
        pytest.skip(reason)
    status, model = lab.request("GET", f"/api/contents/{path.name}?type=notebook&content=1")
    assert status == 200 and model["format"] == "json"
    nb = nbformat.from_dict(model["content"])
    nbformat.validate(nb)
    kernel_name = nb.metadata.kernelspec.name
    status, session = lab.request("POST", "/api/sessions", {"path": path.name, "type": "notebook", "name": path.name,
                                                             "kernel": {"name": kernel_name}})
    assert status == 201, f"the server could not start kernel {kernel_name!r}:\n{lab.log_tail()}"
    channel = KernelChannel(lab, session["kernel"]["id"])
    try:
        code_cells = [c for c in nb.cells if c.cell_type == "code"]
        for i, cell in enumerate(code_cells):
            reply, outputs = channel.execute(cell.source, CELL_TIMEOUT_S)
            errors = [o for o in outputs if o.output_type == "error"]
            where = f"{path.name}, code cell {i}:\n{cell.source[:300]}"
            assert reply["status"] == "ok" and not errors, \
                f"{where}\n" + "\n".join("\n".join(e.traceback) for e in errors) + f"\n{reply.get('evalue', '')}"
            if DRAWS.search(cell.source):
                kinds = [k for o in outputs for k in o.get("data", {})]
                assert "image/png" in kinds, f"{where}\ndraws but returned no image/png (outputs: {kinds})"
        assert any(DRAWS.search(c.source) for c in code_cells), "every notebook draws at least one figure"
    finally:
        channel.close()
        lab.request("DELETE", f"/api/sessions/{session['id']}")


def notebook_title(path: Path) -> str:
    """The text of the first markdown heading of a notebook."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if m := re.search(r"^#\s+(.+?)\s*$", cell.source, flags=re.M):
                return m.group(1)
    raise AssertionError(f"{path.name} has no markdown heading")


def find_or_install_chromium() -> str:
    """Path of a Chromium binary; installs Debian's ``chromium`` with apt-get when missing, or skips with why."""
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    if not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and apt-get is not available to install Debian's chromium package")
    if os.geteuid() != 0:
        pytest.skip("Chromium is not installed; installing Debian's chromium package needs root "
                    "(sudo apt-get install chromium)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    log = []
    try:
        for cmd in (install, ["apt-get", "update", "-q"], install):  # update only when the package lists are stale
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
            log.append(f"$ {' '.join(cmd)} -> {done.returncode}\n{done.stderr[-1500:]}")
            if cmd is install and done.returncode == 0:
                break
    except subprocess.TimeoutExpired as exc:
        pytest.skip(f"installing chromium with apt-get took over {exc.timeout} s")
    if found := shutil.which("chromium"):
        return found
    pytest.skip("apt-get could not install chromium:\n" + "\n".join(log))


class DevTools:
    """The smallest Chrome DevTools Protocol client: numbered calls over one page's websocket."""

    def __init__(self, ws_url: str, port: int):
        self.ws = local_websocket(ws_url, port)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


@pytest.fixture
def chromium(tmp_path):
    """Headless Chromium with the DevTools protocol on a free port; yields a client for its first page."""
    binary = find_or_install_chromium()
    port = free_port()
    cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--no-default-browser-check", "--disable-extensions", "--no-proxy-server", "--window-size=1400,900",
           f"--remote-debugging-port={port}", "--remote-allow-origins=*", f"--user-data-dir={tmp_path / 'profile'}",
           "about:blank"]
    log = tmp_path / "chromium.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    client = None
    try:
        deadline = time.monotonic() + 60
        while client is None:
            if proc.poll() is not None:
                pytest.fail(f"chromium exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with NO_PROXY.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
                    pages = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
                if pages:
                    client = DevTools(pages[0]["webSocketDebuggerUrl"], port)
            except OSError:
                pass
            if client is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"chromium's DevTools did not answer within 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield client
    finally:
        if client is not None:
            client.ws.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


# The rendered markdown headings of the open notebook (JupyterLab appends a "¶" anchor link to each).
HEADINGS_JS = """Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-RenderedMarkdown h1'))
    .map(h => h.textContent.replace('\\u00b6', '').trim())"""


@pytest.mark.slow
def test_jupyterlab_shows_the_tour_in_chromium(lab, chromium):
    from PIL import Image

    tour = ROOT / "notebooks" / "01_tour.ipynb"
    title = notebook_title(tour)
    stored = tour.read_bytes()
    chromium.call("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
    chromium.call("Page.enable")
    chromium.call("Page.navigate", url=f"{lab.url}/lab/tree/{tour.name}?token={lab.token}")
    deadline, headings = time.monotonic() + BROWSER_TIMEOUT_S, []
    while title not in headings:
        if time.monotonic() > deadline:
            text = chromium.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
            pytest.fail(f"JupyterLab did not show {title!r} within {BROWSER_TIMEOUT_S} s; headings {headings}, "
                        f"page text:\n{text}\nserver log:\n{lab.log_tail(2000)}")
        time.sleep(1.0)
        headings = chromium.evaluate(HEADINGS_JS) or []
    tab = chromium.evaluate("Array.from(document.querySelectorAll('.lm-TabBar-tabLabel')).map(t => t.textContent)")
    assert tour.name in tab, f"no tab named {tour.name}: {tab}"
    time.sleep(2.0)  # let the notebook finish laying out before the picture
    png = base64.b64decode(chromium.call("Page.captureScreenshot", format="png")["data"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "jupyterlab_01_tour.png"
    shot.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.size == (1400, 900)
    low, high = image.getextrema()
    assert high - low > 100, f"the screenshot {shot} is nearly uniform (grey levels {low}..{high})"
    print(f"screenshot: {shot}", file=sys.stderr)
    assert tour.read_bytes() == stored, "opening the notebook in JupyterLab changed the stored file"
