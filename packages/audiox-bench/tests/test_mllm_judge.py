"""Two-step MLLM judge clients against a local fake HTTP server on 127.0.0.1."""

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf

from audiox.bench.judges.mllm import BackendError, GeminiBackend, MLLMJudge, OpenAICompatibleBackend, parse_json

RECORD = {"id": "T2A_00575", "type": "category+ordering", "prompt": "A gargle, followed by a water splash.",
          "category": "gargle, water splash", "time_relation": "gargle, water splash"}
ANNOTATION = {"caption": "gargling then a splash", "category": {"gargle": 1, "water splash": 1},
              "SED": [{"00:01.250-00:02.000": "gargle"}, {"00:04.000-00:04.500": "water splash"}],
              "time_relation": "gargle, water splash"}
JUDGMENT = {"prediction": {"cat_acc": 1, "cnt_acc": None, "ord_acc": 1, "ts_acc": None}, "analysis": "both, in order"}


class Fake:
    def __init__(self, fail_first=0, status=503):
        self.requests, self.fail_first, self.status = [], fail_first, status

    def handler(self):
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((self.path, dict(self.headers), body))
                if fake.fail_first > 0:
                    fake.fail_first -= 1
                    self.send_response(fake.status)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                text = json.dumps(body).lower()
                has_audio = "inline_data" in text or "input_audio" in text
                reply = "```json\n" + json.dumps(ANNOTATION if has_audio else JUDGMENT) + "\n```"
                if "generatecontent" in self.path.lower():
                    out = {"candidates": [{"content": {"parts": [{"text": reply}]}}]}
                else:
                    out = {"choices": [{"message": {"content": reply}}]}
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return H


@pytest.fixture
def server():
    fakes = []

    def start(**kw):
        fake = Fake(**kw)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        fakes.append(srv)
        return fake, f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for s in fakes:
        s.shutdown()


AUDIO = (0.1 * np.sin(np.linspace(0, 2000, 16000))).astype(np.float32)


@pytest.mark.parametrize("kind", ["gemini", "openai"])
def test_two_step_judge_blind_then_judgment(server, monkeypatch, kind):
    monkeypatch.setenv("JUDGE_KEY", "sk-secret-123")
    fake, url = server(fail_first=1)  # one 503 first: retried
    if kind == "gemini":
        backend = GeminiBackend(model="gemini-2.5-pro", base_url=url, api_key_env="JUDGE_KEY", backoff_s=0.01)
    else:
        backend = OpenAICompatibleBackend(model="m", base_url=url + "/v1", api_key_env="JUDGE_KEY", backoff_s=0.01)
    assert "sk-secret-123" not in repr(backend)
    out = MLLMJudge(backend).judge(RECORD, AUDIO, 16000)
    assert out["prediction"] == JUDGMENT["prediction"]
    assert out["annotation"]["SED_events"][0] == {"name": "gargle", "onset": 1.25, "offset": 2.0}
    assert len(fake.requests) == 3  # 503, step 1, step 2
    (_, _, _), (p1, h1, b1), (p2, h2, b2) = fake.requests
    step1, step2 = json.dumps(b1), json.dumps(b2)
    assert "gargle" not in step1 and RECORD["prompt"] not in step1  # blind: only the audio
    assert "gargle" in step2 and "inline_data" not in step2 and "input_audio" not in step2
    if kind == "gemini":
        assert p1 == "/v1beta/models/gemini-2.5-pro:generateContent" and h1["x-goog-api-key"] == "sk-secret-123"
        wav = base64.b64decode(b1["contents"][0]["parts"][1]["inline_data"]["data"])
    else:
        assert p1 == "/v1/chat/completions" and h1["Authorization"] == "Bearer sk-secret-123"
        wav = base64.b64decode(b1["messages"][0]["content"][1]["input_audio"]["data"])
    x, sr = sf.read(io.BytesIO(wav))
    assert sr == 16000 and np.allclose(x, AUDIO, atol=1e-4)


def test_client_errors_are_not_retried_and_retries_give_up(server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "k")
    fake, url = server(fail_first=10, status=401)
    with pytest.raises(BackendError, match="401"):
        GeminiBackend(base_url=url, api_key_env="JUDGE_KEY", backoff_s=0.01).generate("hi")
    assert len(fake.requests) == 1
    fake, url = server(fail_first=10, status=500)
    with pytest.raises(BackendError, match="3 attempts"):
        OpenAICompatibleBackend(base_url=url, api_key_env="JUDGE_KEY", max_retries=2, backoff_s=0.01).generate("hi")
    assert len(fake.requests) == 3


def test_missing_key_and_bad_reply(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(BackendError, match="NO_SUCH_KEY"):
        GeminiBackend(base_url="http://127.0.0.1:9", api_key_env="NO_SUCH_KEY").generate("x")
    with pytest.raises(BackendError, match="not JSON"):
        parse_json("no json here")
    assert parse_json('Sure: {"a": 1} done') == {"a": 1}
