"""The explore server's JSON API, over real HTTP on 127.0.0.1 (no browser): each panel's
numbers against a direct library call, every refusal a 4xx JSON error after which the
server keeps serving, background training (done and cancelled), and the time cap."""

from __future__ import annotations

import http.client
import inspect
import json
import re
import socket
import threading
import time

import numpy as np
import pytest
import torch

from vanishing import build_model
from vanishing.demo import DEFAULT_MODELS, demo_config
from vanishing.descent import descend, step_size_verdict
from vanishing.diagnose import weight_conditions
from vanishing.explore import make_server
from vanishing.explore import server as server_module
from vanishing.explore.server import MAX_BODY, RequestError
from vanishing.models import MODELS
from vanishing.probe import hidden_gradients
from vanishing.report.connectivity import task_connectivity
from vanishing.tasks.language import LanguageTask
from vanishing.train import load_checkpoint, save_checkpoint, train


class Client:
    """Raw HTTP to one server, with the Host header the test chooses."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"

    def request(self, method: str, path: str, body: object = None, *, headers=None,
                raw: bytes | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        sent = {"Host": self.host}
        if data is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in sent.items():
            if value is not None:
                conn.putheader(key, value)
        if data is not None and "Content-Length" not in sent:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        if data is not None:
            try:
                conn.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before the body was read
        response = conn.getresponse()
        status, text = response.status, response.read()
        conn.close()
        return status, json.loads(text) if response.getheader("Content-Type", "").startswith(
            "application/json") else {"_text": text.decode()}

    def post(self, path: str, body: object, **kw) -> tuple[int, dict]:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw) -> tuple[int, dict]:
        return self.request("GET", path, **kw)


def _start(models, train_steps=3):
    server = make_server(0, models, train_steps)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def served(tmp_path):
    """A server on a free port with an empty models folder; closed after the test."""
    server, thread = _start(tmp_path / "models")
    yield server, Client(server.port)
    server.close()
    thread.join(10)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The demo's three models trained for 3 steps each (seed 0), saved where the page
    reads them."""
    folder = tmp_path_factory.mktemp("models")
    for name in DEFAULT_MODELS:
        save_checkpoint(folder / f"{name}.pt", train(demo_config(name, 20, 3, 0)))
    return folder


# -- the panels' numbers against the library's own -------------------------------------------
@pytest.mark.parametrize("lr, momentum", [(0.1, 0.0), (0.75, 0.0), (1.1, 0.0), (0.1, 0.8)])
def test_descent_is_the_librarys_path_and_regime(served, lr, momentum):
    _, client = served
    status, got = client.post("/api/descent", {"formula": "(w-3)**2", "start": -4, "lr": lr,
                                               "momentum": momentum, "steps": 25})
    assert status == 200, got
    path = descend("(w-3)**2", -4.0, lr=lr, steps=25, momentum=momentum)
    finite = lambda a: [float(v) if np.isfinite(v) else None for v in a]  # noqa: E731
    assert got["iterates"] == finite(path.iterates[:, 0])
    assert got["losses"] == finite(path.losses)
    assert got["slopes"] == finite(path.gradients[:, 0])
    assert got["status"] == path.status
    verdict = step_size_verdict("(w-3)**2", path)
    assert got["regime"] == verdict.regime.value and got["curvature"] == verdict.curvature
    assert f"--lr {lr!r}" in got["command"]


def test_descent_regimes_differ_with_the_learning_rate(served):
    _, client = served
    regimes = [client.post("/api/descent", {"lr": lr})[1]["regime"] for lr in (0.1, 0.75, 1.1)]
    assert len(set(regimes)) == 3


def _independent_trace(cell, hidden, length, seed=0, **init):
    """The same measurement written with the public API alone (not the panel's code)."""
    model = build_model(cell, 8, hidden, 1, seed=seed, max_length=length, **init).double()
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randn(16, length, 8, generator=g).double()
    return model, hidden_gradients(model, x)


@pytest.mark.parametrize("body, init", [
    ({"cell": "rnn_tanh", "hidden": 32, "length": 60}, {}),
    ({"cell": "lstm", "hidden": 16, "length": 80, "forget_bias": 3.0}, {"forget_bias": 3.0}),
    ({"cell": "gru", "hidden": 24, "length": 50, "init": "orthogonal", "radius": 0.8},
     {"init": "orthogonal", "radius": 0.8}),
    ({"cell": "irnn", "hidden": 16, "length": 40, "seed": 3}, {}),
])
def test_through_time_is_the_librarys_gradient(served, body, init):
    _, client = served
    status, got = client.post("/api/time", body)
    assert status == 200, got
    model, trace = _independent_trace(body["cell"], body["hidden"], body["length"],
                                      body.get("seed", 0), **init)
    expected = trace.relative()[::-1]
    assert len(got["relative"]) == body["length"]
    np.testing.assert_allclose(np.array(got["relative"], dtype=float), expected, rtol=1e-9)
    assert got["horizon"] == trace.horizon(1e-3)
    assert got["decay_rate"] == pytest.approx(trace.decay_rate(), rel=1e-9)
    conditions = weight_conditions(model)
    assert [w["sigma_max"] for w in got["weights"]] == pytest.approx(
        [c.sigma_max for c in conditions], rel=1e-6)
    assert [w["vanishing_guaranteed"] for w in got["weights"]] == [
        c.vanishing_guaranteed for c in conditions]


def test_every_cell_answers(served):
    _, client = served
    status, options = client.get("/api/options")
    assert status == 200
    assert options["time"]["cells"] == list(MODELS)
    for cell in MODELS:
        status, got = client.post("/api/time", {"cell": cell, "hidden": 8, "length": 20})
        assert status == 200, (cell, got)
        assert got["relative"][0] == 1.0 and got["horizon"] <= 19


def test_sentence_predictions_and_connectivity_are_the_librarys(checkpoints):
    server, thread = _start(checkpoints)
    try:
        client = Client(server.port)
        typed = "I grew up in Spain. the city was quiet and now i speak"
        status, got = client.post("/api/sentence", {"text": typed})
        assert status == 200, got
        task = LanguageTask()
        words = got["words"]
        assert words[:6] == ["i", "grew", "up", "in", "spain", "."] and words[-1] == "speak"
        x = torch.tensor([[task.index[w] for w in words]])
        y = torch.tensor([1])  # spain -> spanish, the task's answer
        assert got["answer"] == "spanish"
        assert [m["model"] for m in got["models"]] == list(DEFAULT_MODELS)
        for entry in got["models"]:
            _, model = load_checkpoint(checkpoints / f"{entry['model']}.pt")
            model.eval()
            with torch.no_grad():
                probs = torch.softmax(model(x).double(), dim=-1)[0]
            assert entry["probabilities"] == pytest.approx(probs.tolist(), rel=1e-12)
            assert entry["prediction"] == task.language(int(probs.argmax()))
            view = task_connectivity(model, task, x, y)
            np.testing.assert_allclose(entry["shares"], view.shares, rtol=1e-9)
            np.testing.assert_allclose(entry["norms"], view.norms, rtol=1e-9)
        status, drawn = client.post("/api/sentence", {"random": True, "gap": 5, "seed": 7})
        x7, y7 = task.sample(5, 1, torch.Generator().manual_seed(7))
        assert status == 200 and drawn["words"] == [task.vocab[int(i)] for i in x7[0]]
        assert drawn["answer"] == task.language(int(y7[0]))
    finally:
        server.close()
        thread.join(10)


def test_unknown_words_are_named_not_dropped(served):
    _, client = served
    status, got = client.post("/api/sentence", {"text": "i grew up in atlantis . and now i "
                                                        "speak klingon"})
    assert status == 400
    assert got["unknown"] == ["atlantis", "klingon"] and "'atlantis'" in got["error"]


# -- refusals ---------------------------------------------------------------------------------
BAD = [
    ("/api/descent", {"lr": -1}, "lr must be in"),
    ("/api/descent", {"lr": "fast"}, "lr must be a number"),
    ("/api/descent", {"steps": 10**6}, "steps must be between"),
    ("/api/descent", {"steps": 2.5}, "steps must be an integer"),
    ("/api/descent", {"momentum": 1.0}, "momentum must be in"),
    ("/api/descent", {"start": 1e300}, "start must be in"),
    ("/api/descent", {"formula": "w" * 1001}, "at most 1,000 characters"),
    ("/api/descent", {"formula": "x*y"}, "one variable"),
    ("/api/descent", {"formula": "(w-"}, "invalid syntax"),
    ("/api/descent", {"formula": "log(w)", "start": -1}, "loss is nan"),
    ("/api/descent", {"formula": "__import__('os').system('true')"}, "not allowed"),
    ("/api/descent", {"formula": "().__class__"}, "not allowed"),
    ("/api/time", {"length": 100_000}, "length must be between"),
    ("/api/time", {"length": 1}, "length must be between"),
    ("/api/time", {"hidden": 0}, "hidden must be between"),
    ("/api/time", {"hidden": 10_000}, "hidden must be between"),
    ("/api/time", {"cell": "transformer"}, "unknown cell"),
    ("/api/time", {"init": "chrono", "cell": "rnn_tanh"}, "chrono"),
    ("/api/time", {"radius": 0}, "radius must be in"),
    ("/api/time", {"forget_bias": 1e9}, "forget_bias must be in"),
    ("/api/time", {"seed": -1}, "seed must be between"),
    ("/api/time", {"length": True}, "length must be an integer"),
    ("/api/sentence", {"text": ""}, "must not be empty"),
    ("/api/sentence", {"text": "i " * 300}, "at most 200 words"),
    ("/api/sentence", {"text": "x" * 3000}, "at most 2,000 characters"),
    ("/api/sentence", {"random": True, "gap": 1000}, "gap must be between"),
    ("/api/sentence", {"random": "yes"}, "random must be true or false"),
    ("/api/train", {"cancel": 1}, "cancel must be true or false"),
    ("/api/descent", {"learning_rate": 0.5}, "unknown field(s) 'learning_rate'"),
    ("/api/time", {"T": 500}, "unknown field(s) 'T'"),
    ("/api/sentence", {"sentence": "i"}, "unknown field(s) 'sentence'"),
    ("/api/train", {"steps": 10**9}, "unknown field(s) 'steps'"),
]


def test_bad_parameters_are_one_json_error_and_the_server_keeps_serving(served):
    _, client = served
    for path, body, message in BAD:
        status, got = client.post(path, body)
        assert status == 400, (path, body, got)
        assert set(got) <= {"error", "unknown"} and message in got["error"], (body, got)
        assert "\n" not in got["error"]
    assert client.get("/api/options")[0] == 200
    assert client.post("/api/descent", {})[0] == 200


def test_foreign_host_and_origin_are_refused(served):
    server, client = served
    port = server.port
    for headers in ({"Host": f"evil.example:{port}"}, {"Host": "127.0.0.1"},
                    {"Host": f"127.0.0.1:{port + 1}"}, {"Host": None},
                    {"Origin": "http://evil.example"}, {"Origin": f"http://127.0.0.1:{port + 1}"},
                    {"Origin": "null"}, {"Origin": f"https://127.0.0.1:{port}"}):
        for method, path in (("GET", "/"), ("GET", "/api/options"), ("POST", "/api/time")):
            body = {} if method == "POST" else None
            status, got = client.request(method, path, body, headers=headers)
            assert status == 403 and got["error"].startswith("refused"), (headers, path, got)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        origin = f"http://{host}"
        assert client.get("/api/options", headers={"Host": host, "Origin": origin})[0] == 200
    assert client.get("/api/options")[0] == 200


def test_bodies_that_are_too_big_or_not_json_objects_are_refused(served):
    _, client = served
    big = json.dumps({"formula": "w", "pad": "x" * MAX_BODY}).encode()
    assert client.post("/api/descent", None, raw=big)[0] == 413
    huge = {"Content-Length": str(10**12)}
    assert client.post("/api/descent", None, raw=b"{}", headers=huge)[0] == 413
    assert client.post("/api/descent", None, raw=b"{}", headers={"Content-Type": "text/plain"}
                       )[0] == 415
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe", b"[" * 8000 + b"]" * 8000, b"1e999"):
        status, got = client.post("/api/descent", None, raw=raw)
        assert status == 400 and "error" in got, (raw[:20], got)
    status, got = client.request("POST", "/api/descent", headers={
        "Content-Type": "application/json"})
    assert status == 411
    assert client.post("/api/descent", {})[0] == 200


def test_only_the_allowlisted_files_are_served(served):
    _, client = served
    status, page = client.get("/")
    assert status == 200 and "<title>vanishing explore</title>" in page["_text"]
    assert client.get("/explore.js")[0] == 200 and client.get("/explore.css")[0] == 200
    for path in ("/index.html", "/static/explore.js", "/../pyproject.toml", "/server.py",
                 "/%2e%2e/%2e%2e/pyproject.toml", "/etc/passwd", "//etc/passwd", "/api/nothing"):
        status, got = client.get(path)
        assert status == 404 and got["error"].startswith("not found"), (path, got)
    assert client.request("PUT", "/", {})[0] == 405
    assert client.request("DELETE", "/api/train")[0] == 405


def test_it_binds_the_loopback_address_only(served):
    server, _ = served
    assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    assert "host" not in inspect.signature(make_server).parameters


@pytest.mark.parametrize("port, steps", [(-1, 3), (65536, 3), (True, 3), ("80", 3), (0, 0)])
def test_make_server_refuses_a_bad_port_or_budget(tmp_path, port, steps):
    with pytest.raises((ValueError, TypeError)):
        make_server(port, tmp_path, steps)


def test_work_is_capped_in_time(served, monkeypatch):
    server, client = served
    monkeypatch.setattr(server_module, "TIME_CAP", 0.2)
    with pytest.raises(RequestError) as caught:
        server.compute(time.sleep, 1.0)
    assert caught.value.status == 503 and "no answer within 0.2 s" in str(caught.value)
    monkeypatch.setattr(server_module, "TIME_CAP", 60.0)  # the next request waits its turn
    assert client.post("/api/descent", {})[0] == 200  # the worker is free again, serving


# -- training in the background ----------------------------------------------------------------
def _poll(client, until, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = client.get("/api/train")[1]
        if until(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"training did not reach the state in {seconds} s: {status}")


def test_the_page_trains_the_demo_models_and_then_reads_with_them(served):
    server, client = served
    assert client.get("/api/options")[1]["words"]["available"] == []
    assert client.post("/api/sentence", {"random": True})[1]["models"] == []
    started = client.post("/api/train", {})[1]
    assert started["state"] == "running" and started["steps"] == 3
    done = _poll(client, lambda s: s["state"] != "running")
    assert done["state"] == "done" and done["done"] == list(DEFAULT_MODELS), done
    folder = server.api.store.folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{m}.pt" for m in DEFAULT_MODELS)
    assert client.get("/api/options")[1]["words"]["available"] == list(DEFAULT_MODELS)
    got = client.post("/api/sentence", {"random": True, "seed": 1})[1]
    assert [m["model"] for m in got["models"]] == list(DEFAULT_MODELS)


def test_training_is_cancelled_by_the_page_and_by_shutdown(tmp_path):
    server, thread = _start(tmp_path / "models", train_steps=1_000_000)
    client = Client(server.port)
    client.post("/api/train", {})
    _poll(client, lambda s: s["step"] > 0)
    stopped = client.post("/api/train", {"cancel": True})[1]
    assert stopped["state"] in ("running", "cancelled")
    final = _poll(client, lambda s: s["state"] != "running", seconds=20)
    assert final["state"] == "cancelled" and final["done"] == []
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())
    client.post("/api/train", {})  # again, then the server shuts down while it runs
    _poll(client, lambda s: s["step"] > 0)
    began = time.monotonic()
    server.close()
    thread.join(10)
    assert server.api.job.status()["state"] == "cancelled"
    assert time.monotonic() - began < 10 and not thread.is_alive()


def test_a_malformed_request_is_a_json_error_too(served):
    server, client = served
    for line in (b"GARBAGE\r\n\r\n", b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\n\r\n",
                 b"GET / HTTP/9.9\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(line)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        body = answer.split(b"\r\n\r\n", 1)[-1]
        assert "error" in json.loads(body), answer[:200]
    assert client.get("/api/options")[0] == 200


def test_the_page_fetches_nothing_from_elsewhere(served):
    _, client = served
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
    conn.request("GET", "/", headers={"Host": client.host})
    answer = conn.getresponse()
    answer.read()
    policy = answer.getheader("Content-Security-Policy")
    conn.close()
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    for path in ("/", "/explore.js", "/explore.css"):
        text = client.get(path)[1]["_text"]
        urls = set(re.findall(r"[a-z]+://[^\s\"'`)]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path, urls)
