"""The paper's two-step MLLM judge for T2A-bench (Appendix C), over pluggable HTTP backends.

Step 1 (blind annotation): the model receives *only* the audio and returns a structured annotation
(``caption``, ``category`` name -> count or null, ``SED`` [{"MM:SS.mmm-MM:SS.mmm": description}] or
[{"name", "onset", "offset"}], ``time_relation``). Step 2 (judgment): the model receives the prompt record and
the Step-1 annotation (no audio) and returns ``{"prediction": {"cat_acc", "cnt_acc", "ord_acc", "ts_acc"},
"analysis"}`` with 1 / 0 / null.

Backends: :class:`GeminiBackend` (``generateContent``, key from ``GEMINI_API_KEY``) and
:class:`OpenAICompatibleBackend` (``/chat/completions`` with an ``input_audio`` part, key from
``OPENAI_API_KEY``). Keys are read from the environment, sent only in headers and never logged or repr'd.
Timeouts, and retries with exponential backoff on connection errors, 429 and 5xx.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import numpy as np
import soundfile as sf

from audiox.bench.judges.rules import METRICS

__all__ = ["Backend", "BackendError", "HTTPBackendConfig", "GeminiBackend", "OpenAICompatibleBackend", "MLLMJudge",
           "ANNOTATION_PROMPT", "JUDGMENT_PROMPT", "parse_json", "wav_bytes"]

ANNOTATION_PROMPT = """You are an expert audio annotator. Listen to the audio and describe ONLY what you hear.
Return one JSON object with keys:
"caption": one or two sentences;
"category": an object mapping each distinct sound category to its number of occurrences (null if counting is ambiguous, e.g. continuous sounds);
"SED": a list of {"MM:SS.mmm-MM:SS.mmm": "description"} objects, one per event, with precise start and end times;
"time_relation": the categories in order of first occurrence separated by ", " (null if the order is not distinct).
Return JSON only."""

JUDGMENT_PROMPT = """You are an examiner with an answer key. Compare the structured annotation of an audio clip
with the instruction it was generated from. Task type: {type}.
Instruction record: {record}
Annotation of the audio: {annotation}
Score 1 (correct) or 0 (incorrect) for the metrics that apply, null otherwise:
cat_acc: all categories of the instruction are present (every task type);
cnt_acc (category+count): the detected count equals the instructed count;
ord_acc (category+ordering): the detected order exactly matches the instructed sequence;
ts_acc (category+timestamp): detected start and end are each within 1 second of the instructed times.
Return JSON only: {{"prediction": {{"cat_acc": ..., "cnt_acc": ..., "ord_acc": ..., "ts_acc": ...}}, "analysis": "..."}}"""


class BackendError(RuntimeError):
    pass


class Backend(Protocol):
    def generate(self, prompt: str, audio_wav: bytes | None = None) -> str: ...


@dataclass
class HTTPBackendConfig:
    base_url: str
    model: str
    api_key_env: str
    timeout_s: float = 120.0  # audio understanding calls can be slow
    max_retries: int = 4
    backoff_s: float = 1.0  # doubles per retry
    temperature: float = 0.0  # judgments should be as repeatable as the service allows
    extra_headers: dict = field(default_factory=dict)


class _HTTPBackend:
    def __init__(self, cfg: HTTPBackendConfig, client: httpx.Client | None = None):
        self.cfg = cfg
        self._client = client or httpx.Client(timeout=cfg.timeout_s)

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(base_url={self.cfg.base_url!r}, model={self.cfg.model!r}, key=<from ${self.cfg.api_key_env}>)"

    def _key(self) -> str:
        key = os.environ.get(self.cfg.api_key_env, "")
        if not key:
            raise BackendError(f"set the API key in the environment variable {self.cfg.api_key_env}")
        return key

    def _post(self, url: str, payload: dict, headers: dict) -> dict:
        delay = self.cfg.backoff_s
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            try:
                r = self._client.post(url, json=payload, headers={**self.cfg.extra_headers, **headers}, timeout=self.cfg.timeout_s)
            except httpx.TransportError as e:  # connection refused, timeouts, ...
                last = f"{type(e).__name__}"
            else:
                if r.status_code == 200:
                    return r.json()
                last = f"HTTP {r.status_code}"
                if r.status_code != 429 and r.status_code < 500:
                    raise BackendError(f"{type(self).__name__}: {last}: {r.text[:200]}")
            if attempt < self.cfg.max_retries:
                time.sleep(delay)
                delay *= 2
        raise BackendError(f"{type(self).__name__}: giving up after {self.cfg.max_retries + 1} attempts ({last})")


class GeminiBackend(_HTTPBackend):
    """Google Gemini ``models/{model}:generateContent`` (audio as inline base64 WAV)."""

    def __init__(self, model: str = "gemini-2.5-pro", base_url: str = "https://generativelanguage.googleapis.com",
                 api_key_env: str = "GEMINI_API_KEY", **kw):
        super().__init__(HTTPBackendConfig(base_url.rstrip("/"), model, api_key_env, **kw))

    def generate(self, prompt: str, audio_wav: bytes | None = None) -> str:
        parts: list[dict] = [{"text": prompt}]
        if audio_wav is not None:
            parts.append({"inline_data": {"mime_type": "audio/wav", "data": base64.b64encode(audio_wav).decode()}})
        payload = {"contents": [{"role": "user", "parts": parts}],
                   "generationConfig": {"temperature": self.cfg.temperature, "responseMimeType": "application/json"}}
        url = f"{self.cfg.base_url}/v1beta/models/{self.cfg.model}:generateContent"
        data = self._post(url, payload, {"x-goog-api-key": self._key()})
        try:
            return "".join(p.get("text", "") for p in data["candidates"][0]["content"]["parts"])
        except (KeyError, IndexError, TypeError) as e:
            raise BackendError(f"GeminiBackend: unexpected response shape ({e!r})") from None


class OpenAICompatibleBackend(_HTTPBackend):
    """Any ``/chat/completions`` server that accepts ``input_audio`` content parts (OpenAI, vLLM, ...)."""

    def __init__(self, model: str = "gpt-4o-audio-preview", base_url: str = "https://api.openai.com/v1",
                 api_key_env: str = "OPENAI_API_KEY", **kw):
        super().__init__(HTTPBackendConfig(base_url.rstrip("/"), model, api_key_env, **kw))

    def generate(self, prompt: str, audio_wav: bytes | None = None) -> str:
        content: list[dict] = [{"type": "text", "text": prompt}]
        if audio_wav is not None:
            content.append({"type": "input_audio", "input_audio": {"data": base64.b64encode(audio_wav).decode(), "format": "wav"}})
        payload = {"model": self.cfg.model, "temperature": self.cfg.temperature, "messages": [{"role": "user", "content": content}]}
        data = self._post(f"{self.cfg.base_url}/chat/completions", payload, {"Authorization": f"Bearer {self._key()}"})
        try:
            return data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise BackendError(f"OpenAICompatibleBackend: unexpected response shape ({e!r})") from None


def parse_json(text: str) -> dict:
    """The first JSON object in a model reply (code fences and surrounding prose tolerated)."""
    m = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    cand = m.group(1) if m else text[text.find("{") : text.rfind("}") + 1]
    try:
        out = json.loads(cand)
    except json.JSONDecodeError as e:
        raise BackendError(f"reply is not JSON: {text[:120]!r}") from e
    if not isinstance(out, dict):
        raise BackendError("reply JSON is not an object")
    return out


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV of ``(S,)`` or ``(C, S)`` audio."""
    x = np.asarray(audio, np.float32)
    x = x.T if x.ndim == 2 else x
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


_SPAN = re.compile(r"(\d+):(\d+(?:\.\d+)?)\s*-\s*(\d+):(\d+(?:\.\d+)?)")


def _sed_events(ann: dict) -> list[dict]:
    """Normalise SED entries (``{"MM:SS.mmm-MM:SS.mmm": text}`` or ``{"name", "onset", "offset"}``)."""
    out = []
    for item in ann.get("SED") or []:
        if not isinstance(item, dict):
            continue
        if "onset" in item:
            out.append({"name": str(item.get("name", "")).lower(), "onset": float(item["onset"]), "offset": float(item["offset"])})
            continue
        for span, text in item.items():
            m = _SPAN.search(str(span))
            if m:
                a, b = 60 * int(m.group(1)) + float(m.group(2)), 60 * int(m.group(3)) + float(m.group(4))
                out.append({"name": str(text), "onset": a, "offset": b})
    return out


class MLLMJudge:
    """Two-step judge: ``annotate(audio)`` (blind) then ``judgment(record, annotation)`` (text only)."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def annotate(self, audio: np.ndarray, sample_rate: int) -> dict:
        ann = parse_json(self.backend.generate(ANNOTATION_PROMPT, wav_bytes(audio, sample_rate)))
        ann["SED_events"] = _sed_events(ann)
        return ann

    def judgment(self, record: dict, annotation: dict) -> dict:
        rec = {k: record.get(k) for k in ("prompt", "category", "count", "time_relation", "timestamp")}
        ann = {k: v for k, v in annotation.items() if k != "SED_events"}
        text = JUDGMENT_PROMPT.format(type=record["type"], record=json.dumps(rec), annotation=json.dumps(ann))
        out = parse_json(self.backend.generate(text, None))
        pred = out.get("prediction") or {}
        clean = {}
        for m in METRICS:
            v = pred.get(m)
            clean[m] = None if v is None else int(bool(int(v)))
        return {"prediction": clean, "analysis": str(out.get("analysis", ""))}

    def judge(self, record: dict, audio: np.ndarray, sample_rate: int) -> dict:
        ann = self.annotate(audio, sample_rate)
        res = self.judgment(record, ann)
        return {"id": record["id"], "type": record["type"], "annotation": ann, **res}
