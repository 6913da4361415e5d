"""Annotation clients against a local fake HTTP server; strong-label annotator; augmentation."""

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from audiox.data.annotate import (
    AnnotationFailure,
    GeminiClient,
    OpenAICompatClient,
    cascade,
    strong_label_annotations,
    template_augment,
)
from audiox.data.cli import main
from audiox.data.schema import validate_annotation

KEY = "sekrit-key-1234567890"
GOOD = {
    "caption": "Two beeps, then a bell.",
    "category": {"beep": 2, "bell": 1},
    "SED": [{"00:01.000-00:01.300": "beep"}, {"00:02.000-00:02.300": "beep"}, {"00:04.000-00:05.000": "bell"}],
    "time_relation": "beep, bell",
}
AUG = {
    "rephrase": ["A pair of beeps and a bell."],
    "category": ["Two beeps and one bell."],
    "sed": ["Beeps at 1 s and 2 s, a bell at 4 s."],
    "time_relation": ["Beeps come before the bell."],
}


class Fake:
    """Scripted replies: each entry is (status, payload_text, delay_seconds)."""

    def __init__(self, provider):
        self.provider, self.script, self.seen = provider, [], []
        fake = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, text, delay = fake.script.pop(0) if fake.script else (500, "", 0)
                time.sleep(delay)
                if fake.provider == "gemini":
                    payload = {"candidates": [{"content": {"parts": [{"text": text}]}}]}
                else:
                    payload = {"choices": [{"message": {"content": text}}]}
                data = json.dumps(payload).encode() if status == 200 else b'{"error": "x"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def gemini(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    f = Fake("gemini")
    yield f
    f.close()


@pytest.fixture
def openai():
    f = Fake("openai")
    yield f
    f.close()


def test_retries_transient_errors_then_succeeds(gemini, tmp_path):
    gemini.script = [(500, "", 0), (429, "", 0), (200, json.dumps(GOOD), 0)]
    c = GeminiClient(base_url=gemini.url, backoff=0.01, cache_dir=tmp_path / "cache")
    assert c.complete_json("annotate", validate_annotation, b"audio") == GOOD
    assert c.requests == 3
    assert gemini.seen[-1]["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert gemini.seen[-1]["headers"]["x-goog-api-key"] == KEY
    assert gemini.seen[-1]["body"]["contents"][0]["parts"][1]["inline_data"]["mime_type"] == "audio/flac"
    # cached: no new request, and the cache holds no key
    assert c.complete_json("annotate", validate_annotation, b"audio") == GOOD and c.requests == 3
    for p in (tmp_path / "cache").rglob("*"):
        assert KEY not in p.name and (p.is_dir() or KEY not in p.read_text())


def test_bad_json_and_bad_schema_are_retried_then_fail(openai, tmp_path, caplog):
    bad_schema = dict(GOOD, category={"beep": 0})
    openai.script = [
        (200, "not json at all", 0),
        (200, json.dumps(bad_schema), 0),
        (200, '```json\n{"caption": 1}```', 0),
    ]
    c = OpenAICompatClient(base_url=openai.url, backoff=0.01, max_retries=2, cache_dir=tmp_path / "cache")
    with pytest.raises(AnnotationFailure, match="no valid answer after 3 tries"):
        c.complete_json("annotate", validate_annotation, b"audio")
    assert c.requests == 3 and not list((tmp_path / "cache").rglob("*.json"))  # nothing recorded as data
    assert openai.seen[0]["path"] == "/v1/chat/completions"


def test_fenced_json_is_accepted(openai):
    openai.script = [(200, "Sure:\n```json\n" + json.dumps(GOOD) + "\n```", 0)]
    assert OpenAICompatClient(base_url=openai.url).complete_json("x", validate_annotation) == GOOD


def test_timeout_is_retried(openai):
    openai.script = [(200, json.dumps(GOOD), 1.5), (200, json.dumps(GOOD), 0)]
    c = OpenAICompatClient(base_url=openai.url, timeout=0.3, backoff=0.01)
    t = time.monotonic()
    assert c.complete_json("x", validate_annotation) == GOOD
    assert c.requests == 2 and time.monotonic() - t < 1.5


def test_key_never_in_logs_or_errors(gemini, caplog):
    caplog.set_level(logging.DEBUG)
    gemini.script = [(500, "", 0), (200, f"echo {KEY}", 0), (503, "", 0)]
    c = GeminiClient(base_url=gemini.url, backoff=0.01, max_retries=2)
    with pytest.raises(AnnotationFailure) as e:
        c.complete_json("x", validate_annotation)
    assert KEY not in str(e.value) and KEY not in caplog.text
    assert all(KEY not in json.dumps(s["body"]) for s in gemini.seen)  # only in the header


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="GEMINI_API_KEY"):
        GeminiClient(base_url="http://127.0.0.1:9")


def test_min_interval_rate_limit(openai):
    openai.script = [(200, json.dumps(GOOD), 0)] * 3
    c = OpenAICompatClient(base_url=openai.url, min_interval=0.2)
    t = time.monotonic()
    for i in range(3):
        c.complete_json(f"x{i}", validate_annotation)
    assert time.monotonic() - t >= 0.4


def test_cascade_two_steps(gemini, openai):
    gemini.script = [(200, json.dumps(GOOD), 0)]
    openai.script = [(200, json.dumps({"rephrase": []}), 0), (200, json.dumps(AUG), 0)]
    ann = cascade(
        b"audio",
        GeminiClient(base_url=gemini.url),
        OpenAICompatClient(base_url=openai.url, backoff=0.01),
        hints=["beep", "bell"],
    )
    assert ann["captions"] == AUG and ann["category"] == GOOD["category"]
    assert "beep, bell" in gemini.seen[0]["body"]["contents"][0]["parts"][0]["text"]
    assert json.dumps(GOOD["category"]) in openai.seen[-1]["body"]["messages"][0]["content"][0]["text"]


def test_strong_label_annotator(tmp_path):
    tsv = tmp_path / "strong.tsv"
    tsv.write_text(
        "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
        "a.wav\t0.0\t9.0\tSpeech\na.wav\t0.5\t1.0\tYip\na.wav\t8.0\t8.6\tYip\n"
        "b.wav\t1.0\t2.0\tDog\nb.wav\t3.0\t3.5\tCat\nb.wav\t5.0\t5.5\tCat\n"
    )
    anns = strong_label_annotations(tsv)
    a, b = anns["a.wav"], anns["b.wav"]
    assert a["category"] == {"Speech": None, "Yip": 2} and a["time_relation"] == "interleave"
    assert a["SED"][0] == {"00:00.000-00:09.000": "Speech"}
    assert b["category"] == {"Dog": 1, "Cat": 2} and b["time_relation"] == "Dog, Cat"
    assert b["caption"] == "Dog (once), then Cat (twice)."
    caps = b["captions"]
    assert set(caps) == {"rephrase", "category", "sed", "time_relation"}
    assert "Cat from 3.0 to 3.5 seconds" in caps["sed"][0] and caps["time_relation"] == ["First Dog, then Cat."]
    out = tmp_path / "out.jsonl"
    assert main(["annotate", "strong", str(tsv), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2
    tsv.write_text("a.wav\tzero\t1\tX\na.wav\t2\t1\tX\n")
    assert main(["annotate", "strong", str(tsv), "--out", str(tmp_path / "bad.jsonl")]) == 2
    assert not (tmp_path / "bad.jsonl").exists()


def test_music_template_augmentation():
    ann = {
        "caption": "A gentle track.",
        "genre": "acoustic pop",
        "mood": "gentle, uplifting",
        "instrument": ["piano"],
        "tempo": "slow",
    }
    caps = template_augment(ann)
    assert set(caps) == {"rephrase", "genre", "mood", "tempo"}
    assert "acoustic pop" in caps["genre"][0] and "slow" in caps["tempo"][0] and "Gentle" in caps["mood"][0]
