"""`detector serve`: the JSON API and its errors against the real default LM (served by uvicorn on a free
loopback port), the token rule, and the page driven in headless Chromium through a real `detector serve`."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import uvicorn
from conftest import HUMAN_TEXT, HUMAN_TEXT_2, MINI, ROOT, SEED

from detector import Detector
from detector.integrations.serve import ServeConfig, ServeError, check_exposure, create_app, is_loopback, token_ok
from detector.text.normalize import normalize
from detector_cli.main import main

LIMITS = dict(max_body_bytes=20_000, max_texts=3, max_chars=6_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app):
    """The app under a real uvicorn on a free loopback port, in a thread of this process."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def call(base: str, path: str, body=None, *, content_type: str = "application/json", headers: dict | None = None,
         method: str | None = None) -> tuple[int, dict, object]:
    """(status, headers, decoded JSON) of one request; errors are answers too."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method or ("GET" if data is None else "POST"),
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, _lower(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, _lower(err.headers), json.loads(err.read())


def _lower(headers) -> dict:
    return {k.lower(): v for k, v in headers.items()}


def assert_error(answer: tuple, status: int, *words: str) -> str:
    code, _, body = answer
    assert code == status, (code, body)
    assert set(body) == {"error"}, body
    message = body["error"]
    assert "\n" not in message and 0 < len(message) < 300, message
    for word in words:
        assert word in message, (word, message)
    return message


@pytest.fixture(scope="module")
def detector():
    # Its own Detector (the LM itself is loaded once per process): the server switches its cache off.
    return Detector()


@pytest.fixture(scope="module")
def api(detector):
    with running(create_app(detector, ServeConfig(**LIMITS))) as base:
        yield base


# ----------------------------------------------------------------------------------------- answers


def test_score_answers_what_detector_score_answers(api, detector):
    seed = SEED.read_text(encoding="utf-8")
    code, _, record = call(api, "/v1/score", {"text": seed})
    assert code == 200
    [direct] = detector.score([seed])
    assert record["source"] == "text" and record["verdict"] == direct.verdict == "machine"
    assert record["reason"] == direct.reason and record["n_tokens"] == direct.n_tokens
    assert record["p_machine"] == pytest.approx(direct.p_machine, abs=1e-6)
    assert "explanation" not in record


def test_texts_answer_a_list_in_order(api, detector):
    texts = [HUMAN_TEXT, SEED.read_text(encoding="utf-8"), "Too short."]
    code, _, records = call(api, "/v1/score", {"texts": texts, "explain": True})
    assert code == 200 and [r["source"] for r in records] == ["texts[0]", "texts[1]", "texts[2]"]
    direct = detector.score(texts)
    assert [r["verdict"] for r in records] == [d.verdict for d in direct]
    assert records[1]["verdict"] == "machine" and records[2]["verdict"] == "uncertain"
    assert records[1]["p_machine"] > records[0]["p_machine"]
    assert records[0]["explanation"]["sentences"] and records[1]["explanation"]["top_features"]


def test_plain_text_body_matches_the_cli_json(api, capsys):
    """A file's bytes as the body: the same record as `detector score FILE --format json --explain`."""
    assert main(["score", str(SEED), "--format", "json", "--explain", "-q"]) == 0
    [cli] = json.loads(capsys.readouterr().out)
    code, _, record = call(api, f"/v1/score?explain=true&source={SEED}", SEED.read_bytes(), content_type="text/plain")
    assert code == 200
    assert record.keys() == cli.keys()
    for key in ("source", "verdict", "reason", "n_tokens", "altered"):
        assert record[key] == cli[key], key
    assert record["p_machine"] == pytest.approx(cli["p_machine"], abs=1e-6)
    sentences = record["explanation"]["sentences"]
    assert [s["text"] for s in sentences] == [s["text"] for s in cli["explanation"]["sentences"]]


def test_concurrent_requests_each_get_their_own_answer(detector):
    """Requests batched together still get their own records, those of each text scored alone: the LM scores
    one window per pass whatever else is waiting, and the classifier each row on its own (its float sums
    differ in the last bits with the number of rows)."""
    texts = [json.loads(line)["text"] for line in MINI.read_text(encoding="utf-8").splitlines()[:8]]
    direct = [detector.score([text])[0] for text in texts]
    answers: dict[int, tuple] = {}

    def ask(i: int) -> None:
        answers[i] = call(base, "/v1/score", {"text": texts[i]})

    logging.getLogger("detector.integrations.serve").setLevel(logging.INFO)
    with running(create_app(detector, ServeConfig(**LIMITS, batch_texts=8))) as base:
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    for i, d in enumerate(direct):
        code, _, record = answers[i]
        assert code == 200 and record["n_tokens"] == d.n_tokens and record["verdict"] == d.verdict
        assert record["p_machine"] == pytest.approx(d.p_machine, abs=1e-12) and record["reason"] == d.reason


def test_a_pathological_text_is_read_to_the_bound_and_answered_as_detector_score_answers(detector):
    text = "a!" * 3_000 + "b" * 20_000  # 3,000 one-letter sentences, then one long run without a space
    with running(create_app(detector, ServeConfig())) as base:
        code, _, record = call(base, "/v1/score", {"text": text, "explain": True})
    assert code == 200
    [direct] = detector.score([text], explain=True)
    assert record["p_machine"] == pytest.approx(direct.p_machine, abs=1e-12) and record["reason"] == direct.reason
    assert "only its first 20,000 characters were read (6,000 more were not)" in record["reason"]
    sentences = record["explanation"]["sentences"]
    assert len(sentences) > 3_000 and sentences[0]["p_machine"] is not None
    assert sentences[-1]["p_machine"] is None  # past the scored sentences: listed, not scored


def test_render_uses_the_report_template(api):
    code, _, answer = call(api, "/v1/render", {"text": SEED.read_text(encoding="utf-8")})
    assert code == 200 and answer["result"]["verdict"] == "machine"
    html = answer["html"]
    assert '<section class="doc">' in html and 'class="verdict machine"' in html
    assert html.count('class="sent"') > 20 and html.count('class="tok"') > 500 and 'class="gltr-toggle"' in html
    assert 'class="features"' in html


def test_page_and_report_share_one_template(api, detector, tmp_path):
    """The page's view of a text is the `--html` report's section for it, byte for byte."""
    from detector.io.decoding import Item
    from detector.io.html_report import write_html

    seed = SEED.read_text(encoding="utf-8")
    code, _, answer = call(api, "/v1/render", {"text": seed})
    assert code == 200
    [analysis] = detector.analyse([seed])
    [result] = detector.results([analysis], explain=True)
    report = write_html([(Item("text", seed), analysis, result)], detector.model, tmp_path / "r.html", tokens=True)
    section = re.search(r'<section class="doc">.*?</section>', report.read_text(encoding="utf-8"), re.S).group(0)
    assert section.replace(" checked>", ">") == answer["html"]  # the report opens on GLTR colours, the page not


def test_health_describes_model_lm_engine_thresholds(api, detector):
    code, _, health = call(api, "/health")
    assert code == 200 and health["status"] == "ok"
    assert health["lm"]["name"] == "smollm2-135m-instruct" and health["lm"]["revision"]
    assert health["engine"]["device"] == "cpu"
    assert health["engine"]["dtype"] == detector.model.scoring_engine.dtype == "bfloat16"
    assert health["thresholds"]["machine"] == detector.model.thresholds.machine
    assert health["limits"]["max_texts"] == LIMITS["max_texts"] and health["token_required"] is False


def test_page_and_docs_load_nothing_external(api):
    for path in ("/", "/docs"):
        with urllib.request.urlopen(api + path, timeout=30) as response:
            page = response.read().decode()
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        links = re.findall(r'(?:src|href)="([^"]*)"', page)
        assert links and all(link.startswith("/") for link in links), links
        assert "http://" not in page and "https://" not in page
    with urllib.request.urlopen(api + "/openapi.json", timeout=30) as response:
        spec = json.loads(response.read())
    assert {"/v1/score", "/v1/render", "/health"} <= set(spec["paths"])


# ----------------------------------------------------------------------------------------- errors


def test_oversized_body_is_413(api):
    big = {"text": "word " * 5_000}  # 25 kB > 20 kB
    assert_error(call(api, "/v1/score", big), 413, "20000 bytes", "--max-body-bytes")
    # Without a Content-Length (chunked), the limit holds while reading.
    host, port = api.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    chunks = (b'{"text": "' + b"word " * 1000 for _ in range(5))
    conn.request("POST", "/v1/score", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413 and "over the limit" in json.loads(response.read())["error"]
    conn.close()


def test_too_many_or_too_long_texts_are_413(api):
    assert_error(call(api, "/v1/score", {"texts": [HUMAN_TEXT] * 4}), 413, "4 texts", "limit of 3", "--max-texts")
    assert_error(call(api, "/v1/score", {"texts": [HUMAN_TEXT, "x" * 7_000]}), 413, "texts[1]", "7000 characters",
                 "--max-chars")


@pytest.mark.parametrize("body, words", [
    ({"text": ""}, ("text is empty",)),
    ({"text": " \n\t "}, ("whitespace only",)),
    ({"texts": [HUMAN_TEXT, ""]}, ("texts[1] is empty",)),
    ({"texts": []}, ("empty list",)),
    ({}, ('either "text"',)),
    ({"text": HUMAN_TEXT, "texts": [HUMAN_TEXT_2]}, ('either "text"',)),
])
def test_empty_text_is_422(api, body, words):
    assert_error(call(api, "/v1/score", body), 422, *words)


@pytest.mark.parametrize("body, words", [
    ({"text": 5}, ("text:", "valid string")),
    ({"texts": "one string"}, ("texts:", "valid list")),
    ({"texts": [HUMAN_TEXT, 3]}, ("texts.1:", "valid string")),
    ({"text": HUMAN_TEXT, "explain": "yes"}, ("explain:", "valid boolean")),
    ({"text": HUMAN_TEXT, "colour": "red"}, ("colour:", "not permitted")),
    ([HUMAN_TEXT], ("valid dictionary",)),
])
def test_wrong_types_are_422_in_one_line(api, body, words):
    assert_error(call(api, "/v1/score", body), 422, *words)


def test_non_utf8_and_malformed_bodies_are_400(api):
    latin1 = json.dumps({"text": "café"}, ensure_ascii=False).encode("latin-1")
    assert_error(call(api, "/v1/score", latin1), 400, "not UTF-8", "0xe9")
    assert_error(call(api, "/v1/score", b'{"text": "unfinished'), 400, "not valid JSON")
    assert_error(call(api, "/v1/score", b'{"text": "\\ud800 lone"}'), 400, "lone surrogate")
    # A plain-text body is decoded as `detector score` decodes a file.
    assert_error(call(api, "/v1/score", "café".encode("latin-1"), content_type="text/plain"), 400, "not UTF-8")
    assert_error(call(api, "/v1/score", b"\x00\x01binary", content_type="text/plain"), 400, "binary")
    assert_error(call(api, "/v1/score", b"", content_type="text/plain"), 422, "empty")
    assert_error(call(api, "/v1/score", b"<x/>", content_type="application/xml"), 415, "application/json")
    assert_error(call(api, "/nowhere"), 404, "Not Found")
    assert_error(call(api, "/v1/score", method="GET"), 405, "Method Not Allowed")


class Gated(Detector):
    """The real detector, held at a gate the test opens: makes queue-full and timeout deterministic."""

    def __init__(self, inner: Detector):
        super().__init__(inner.model)
        self.gate, self.entered = threading.Event(), threading.Event()

    def analyse(self, texts):
        self.entered.set()
        assert self.gate.wait(120)
        return super().analyse(texts)


@contextlib.contextmanager
def opened(gated: Gated):
    """Open the gate on the way out, pass or fail, so the worker thread can finish."""
    try:
        yield
    finally:
        gated.gate.set()


def test_full_queue_is_503_with_retry_after(detector):
    gated = Gated(detector)
    answers: dict[str, tuple] = {}

    def ask(name: str) -> None:
        answers[name] = call(base, "/v1/score", {"text": HUMAN_TEXT})

    with running(create_app(gated, ServeConfig(queue_size=1, timeout_s=120))) as base, opened(gated):
        first = threading.Thread(target=ask, args=("first",))
        first.start()
        assert gated.entered.wait(60)  # the worker holds the first request
        second = threading.Thread(target=ask, args=("second",))
        second.start()
        deadline = time.time() + 60
        while call(base, "/health")[2]["queue"]["waiting"] < 1:  # the second waits in the queue
            assert time.time() < deadline
            time.sleep(0.05)
        code, headers, _ = answer = call(base, "/v1/score", {"text": HUMAN_TEXT_2})
        assert_error(answer, 503, "busy", "retry")
        assert int(headers["retry-after"]) > 0
        gated.gate.set()
        first.join(300)
        second.join(300)
    assert answers["first"][0] == answers["second"][0] == 200  # queued work is not lost


def test_slow_request_is_504(detector):
    gated = Gated(detector)
    with running(create_app(gated, ServeConfig(timeout_s=1.0))) as base, opened(gated):
        assert_error(call(base, "/v1/score", {"text": HUMAN_TEXT}), 504, "1 s", "--timeout")


class Recording(Gated):
    """The gated detector, recording which texts it was asked to analyse."""

    def __init__(self, inner: Detector):
        super().__init__(inner)
        self.analysed: list[str] = []

    def analyse(self, texts):
        self.analysed += texts
        return super().analyse(texts)


def test_a_request_past_its_deadline_is_answered_504_and_never_scored(detector):
    """One slow request cannot make the worker spend time on those that waited past their deadline behind it."""
    recording = Recording(detector)
    answers: dict[str, tuple] = {}

    def ask(name: str, text: str) -> None:
        answers[name] = call(base, "/v1/score", {"text": text})

    with running(create_app(recording, ServeConfig(timeout_s=2.0))) as base, opened(recording):
        slow = threading.Thread(target=ask, args=("slow", HUMAN_TEXT))
        slow.start()
        assert recording.entered.wait(60)  # the worker holds the first request at the gate
        behind = threading.Thread(target=ask, args=("behind", HUMAN_TEXT_2))
        behind.start()
        behind.join(60)
        slow.join(60)
        recording.gate.set()
        deadline = time.time() + 120  # the worker finishes the slow one, then takes the next request
        while recording.analysed == [HUMAN_TEXT]:
            marker = "The gate is open now and this request arrived well within its deadline."
            fresh = call(base, "/v1/score", {"text": marker})
            assert time.time() < deadline
        assert fresh[0] == 200
    assert_error(answers["slow"], 504, "--timeout")
    assert_error(answers["behind"], 504, "--timeout")
    assert HUMAN_TEXT_2 not in recording.analysed and recording.analysed[0] == HUMAN_TEXT


# ----------------------------------------------------------------------------------------- exposure


def test_binding_beyond_loopback_needs_a_token(monkeypatch, capsys):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_exposure(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(ServeError, match="--token"):
            check_exposure(host, None)
        check_exposure(host, "s3cret")
    monkeypatch.delenv("DETECTOR_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2  # refused before binding anything
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--token" in err
    with socket.socket() as taken:  # a port in use: said in one line, before the model is loaded
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot listen on 127.0.0.1" in err
    assert main(["serve", "--max-texts", "0"]) == 2 and "--max-texts" in capsys.readouterr().err
    assert token_ok("Bearer s3cret", "s3cret") and token_ok(None, None)
    assert not token_ok(None, "s3cret") and not token_ok("Bearer wrong", "s3cret") and not token_ok("s3cret", "s3cret")


def test_token_is_checked_on_every_api_call_and_texts_are_logged_only_when_asked(detector, caplog):
    marker = "The lighthouse keeper counted seventeen gulls on the rail before breakfast."
    caplog.set_level(logging.INFO)
    with running(create_app(detector, ServeConfig(token="s3cret", log_texts=True))) as base:
        good = {"Authorization": "Bearer s3cret"}
        for headers in ({}, {"Authorization": "Bearer nope"}):
            assert_error(call(base, "/health", headers=headers), 401, "token")
            assert_error(call(base, "/v1/score", {"text": marker}, headers=headers), 401, "token")
            assert_error(call(base, "/v1/render", {"text": marker}, headers=headers), 401, "token")
        assert marker not in caplog.text
        assert call(base, "/health", headers=good)[0] == 200
        assert call(base, "/v1/score", {"text": marker}, headers=good)[0] == 200
        with urllib.request.urlopen(base + "/", timeout=30) as response:  # the page asks for the token
            assert 'id="token"' in response.read().decode()
    assert marker in caplog.text  # --log-texts


def test_no_text_is_logged_by_default(api, caplog):
    marker = "A heron stood in the car park all afternoon, ignoring the shoppers entirely."
    caplog.set_level(logging.DEBUG)
    assert call(api, "/v1/score", {"text": marker})[0] == 200
    assert call(api, "/v1/score", {"text": ""})[0] == 422
    # The worker logs its batch after answering it, so the line may arrive a moment after the reply.
    deadline = time.monotonic() + 10
    while "scored 1 texts" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "scored 1 texts" in caplog.text and marker not in caplog.text


# ----------------------------------------------------------------------------------------- the page


CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-pipe"]


class Chromium:
    """Chrome DevTools Protocol over --remote-debugging-pipe (we write fd 3, read fd 4): no websocket package."""

    def __init__(self, browser: str, profile: Path):
        to_read, self._to = os.pipe()
        self._from, from_write = os.pipe()
        script = f'exec "$@" 3<&{to_read} 4>&{from_write}'
        self.proc = subprocess.Popen(["bash", "-c", script, "chromium", browser, *CHROMIUM_FLAGS,
                                      f"--user-data-dir={profile}", "about:blank"],
                                     pass_fds=(to_read, from_write), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_read)
        os.close(from_write)
        self._buffer, self._id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to, data):]
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _read(self, timeout: float) -> dict:
        while b"\0" not in self._buffer:
            if not select.select([self._from], [], [], timeout)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        os.close(self._to)
        os.close(self._from)


class Tab:
    def __init__(self, browser: Chromium, width: int = 1100, height: int = 1500):
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def js(self, expression: str):
        answer = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise RuntimeError(answer["exceptionDetails"])
        return answer["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 180):
        deadline = time.time() + seconds
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(expression)

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"]))
        return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m detector_cli serve` on a free loopback port, as a user starts it."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "detector_cli", "serve", "--port", str(port)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                urllib.request.urlopen(base + "/health", timeout=5).close()
                break
            assert time.time() < deadline, "detector serve did not come up"
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)
    assert SEED.read_text(encoding="utf-8")[:40] not in log.read_text()  # no text in the server's log


def test_page_in_headless_chromium(served, tmp_path):
    """Paste the seed, submit, read the verdict and the shaded sentences, toggle GLTR, drop a file."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian's chromium is needed for this test (.ci/run installs it)"
    shots = Path(os.environ.get("DETECTOR_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    seed = SEED.read_text(encoding="utf-8")
    browser = Chromium(binary, tmp_path / "profile")
    try:
        tab = Tab(browser)
        tab.send("Page.navigate", {"url": served + "/"})
        tab.wait_for("document.readyState === 'complete' && !!document.getElementById('text')", 60)
        tab.js("document.getElementById('text').focus()")
        tab.send("Input.insertText", {"text": seed})  # what a paste does
        assert tab.js("document.getElementById('text').value.length") == len(seed)
        tab.js("document.getElementById('score').click()")
        verdict = tab.wait_for("document.querySelector('#result .verdict')?.textContent")
        shown = tab.js("""(() => {
            const doc = document.querySelector('#result .doc');
            const sents = [...doc.querySelectorAll('.sents .sent')];
            return {p: doc.querySelector('.p-machine').textContent, reason: doc.querySelector('.reason').textContent,
                    features: doc.querySelectorAll('.features tr').length,
                    sentences: sents.map(s => ({text: s.textContent, p: parseFloat(s.dataset.p),
                                                colour: getComputedStyle(s).backgroundColor})),
                    tokensVisible: getComputedStyle(doc.querySelector('.toks')).display !== 'none'};
        })()""")
        tab.screenshot(shots / "serve_page.png")
        assert verdict == "machine" and shown["p"].startswith("p(machine) 0.") and "threshold" in shown["reason"]
        assert shown["features"] > 1 and not shown["tokensVisible"]
        sentences = shown["sentences"]
        read = normalize(seed).text  # the sentences of the text as the detector reads it (layout as spaces)
        assert len(sentences) > 20 and sentences[0]["text"] in read and sentences[-1]["text"] in read
        assert len({s["colour"] for s in sentences}) > 5  # shaded by their own scores, not one colour
        red = [s for s in sentences if s["p"] is not None and s["p"] > 0.8]
        assert red and all(s["colour"].startswith("rgba(192, 57, 43") for s in red)

        tab.js("document.querySelector('#result label.toggle').click()")  # GLTR token colours on
        gltr = tab.js("""(() => ({
            tokens: [...document.querySelectorAll('#result .toks .tok')].filter(t => t.offsetParent !== null).length,
            sentencesHidden: getComputedStyle(document.querySelector('#result .sents')).display === 'none'}))()""")
        assert gltr["tokens"] > 500 and gltr["sentencesHidden"]
        tab.screenshot(shots / "serve_page_gltr.png")

        # A file, as a user drops or picks it: its bytes go to the server, decoded like `detector score` does.
        tab.js("document.getElementById('result').innerHTML = ''")
        node = tab.send("Runtime.evaluate", {"expression": "document.getElementById('file')"})["result"]["objectId"]
        tab.send("DOM.setFileInputFiles", {"files": [str(SEED)], "objectId": node})
        source = tab.wait_for("document.querySelector('#result .source')?.textContent")
        assert source == SEED.name and tab.js("document.querySelector('#result .verdict').textContent") == "machine"
        assert tab.js("document.querySelectorAll('#result .features tr').length") > 1

        tab.js("document.getElementById('text').value = '   '; document.getElementById('score').click()")
        error = tab.wait_for("document.querySelector('#status.error')?.textContent", 60)
        assert "whitespace only" in error
        requested = [e["params"]["request"]["url"] for e in browser.events
                     if e.get("method") == "Network.requestWillBeSent"]
        assert requested and all(url.startswith(served) for url in requested), requested  # nothing external
    finally:
        browser.close()
    assert (shots / "serve_page.png").stat().st_size > 20_000
