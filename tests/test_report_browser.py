"""The report renders in a real browser: headless Chromium over the DevTools protocol.

Chromium (Debian package `chromium`) is started with --remote-debugging-port on
127.0.0.1; a minimal WebSocket client (standard library only, below) loads
index.html, collects console errors, uncaught exceptions and browser log errors,
checks every <img> decoded (naturalWidth > 0), and saves a screenshot. Without
Chromium the test is skipped with the reason, never passed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from analysis_rows import known_study, make_row, write_generator_eval, write_loss_table, write_rows, \
    write_synthetic_store

from medaug.analysis.report import build_report

pytestmark = pytest.mark.browser

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    return next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)


class WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: masked text frames out, (fragmented) frames in."""

    def __init__(self, url: str, timeout: float = 30.0):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"websocket handshake refused: {status!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text: str) -> None:
        data = text.encode()
        head = bytes([0x81])
        n = len(data)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (9, 10):  # ping/pong: ignore (DevTools does not ping)
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """Calls DevTools methods and keeps every event for later inspection."""

    def __init__(self, ws: WebSocket):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise TimeoutError(f"no {method} within {timeout} s")


@pytest.fixture
def chromium(tmp_path):
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not installed: apt-get install -y chromium (Debian), or set CHROMIUM=/path/to/chrome")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1280,1600",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        ws = WebSocket(pages[0]["webSocketDebuggerUrl"])
        yield DevTools(ws)
        ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def full_results(tmp_path: Path) -> tuple[Path, Path, str]:
    """A results folder with everything the report can show: two datasets, a failed run, generator
    evaluations, a generator loss table and a synthetic Zarr set."""
    out = known_study(tmp_path / "out", ("breastmnist", "pneumoniamnist"))
    write_rows(out, [make_row("dermamnist", status="failed", seed=0,
                              error="Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory")])
    write_generator_eval(out, [
        {"generator": "cvae", "dataset": "breastmnist", "extractor": "cnn", "fid": 40.0, "fid_floor": 10.0,
         "precision": 0.6, "recall": 0.4, "tstr_acc": 0.7, "trtr_acc": 0.82, "seed": 0},
        {"generator": "cgan", "dataset": "breastmnist", "extractor": "cnn", "fid": 25.0, "fid_floor": 10.0,
         "precision": 0.7, "recall": 0.3, "tstr_acc": 0.6, "trtr_acc": 0.82, "seed": 0}])
    gen_run = tmp_path / "gen-run"
    write_loss_table(gen_run)
    ref = write_synthetic_store(tmp_path / "syn.zarr", "breastmnist-cvae-s0", class_names=["malignant", "benign"])
    return out, gen_run, ref


def test_report_renders_in_chromium(tmp_path, chromium):
    out, gen_run, ref = full_results(tmp_path)
    rep = build_report([out], tmp_path / "report", generator_runs=[gen_run], synthetic=[ref])
    names = {f.name for f in rep.figures}
    assert {"gain_heatmap", "fidelity_utility", "class_distribution"} <= names
    assert any(n.startswith("montage_") for n in names) and any(n.startswith("generator_losses_") for n in names)

    dt = chromium
    for domain in ("Page", "Runtime", "Log"):
        dt.call(f"{domain}.enable")
    dt.call("Page.navigate", url=rep.index_html.resolve().as_uri())
    dt.wait_event("Page.loadEventFired")
    images = json.loads(dt.call("Runtime.evaluate", returnByValue=True, expression=(
        "JSON.stringify(Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, "
        "w: i.naturalWidth, h: i.naturalHeight, data: i.src.startsWith('data:image/png;base64,')})))"
    ))["result"]["value"])
    title = dt.call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"]["value"]
    n_tables = dt.call("Runtime.evaluate", expression="document.querySelectorAll('table.results').length",
                       returnByValue=True)["result"]["value"]

    metrics = dt.call("Page.getLayoutMetrics")["cssContentSize"]
    shot = dt.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                   clip={"x": 0, "y": 0, "width": metrics["width"], "height": min(metrics["height"], 16000),
                         "scale": 1})
    screenshot = tmp_path / "report-screenshot.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    top = dt.call("Page.captureScreenshot", format="png")
    (tmp_path / "report-top.png").write_bytes(base64.b64decode(top["data"]))
    if os.environ.get("MEDAUG_ARTIFACTS"):
        dest = Path(os.environ["MEDAUG_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, dest / screenshot.name)
        shutil.copy(tmp_path / "report-top.png", dest / "report-top.png")

    errors = [e for e in dt.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
    assert not errors, f"console errors: {errors}"
    assert len(images) == len(rep.figures) >= 6
    broken = [i["alt"] for i in images if not (i["complete"] and i["w"] > 0 and i["h"] > 0 and i["data"])]
    assert not broken, f"broken images: {broken}"
    assert title == rep.index_html.read_text().split("<title>")[1].split("</title>")[0]
    assert n_tables >= 5
    assert screenshot.stat().st_size > 20_000
