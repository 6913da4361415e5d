"""Stage 2 annotation and augmentation (paper Sec. III-B, Appendix A2).

- :class:`GeminiClient` and :class:`OpenAICompatClient` (e.g. Qwen2-Audio served by vLLM): real HTTP
  clients (httpx) with timeouts, retries with exponential backoff, a minimum interval between requests
  (rate limit), an on-disk response cache, and strict validation of the returned JSON (invalid answers
  are retried, then raised as :class:`AnnotationFailure`: never returned as data). API keys come from
  environment variables, are sent in headers only, and never reach logs, errors, outputs or cache keys.
- :func:`cascade`: step 1 (a strong multimodal LLM) writes the IF-caps-Pro fields from the audio plus
  grounding labels; step 2 (a cheaper model, or offline templates) writes captions from four perspectives.
- :func:`strong_label_annotations`: the deterministic annotator from AudioSet-Strong style TSV
  (``file, onset, offset, label``).
- :func:`template_augment`: offline augmentation (audio: rephrase / category+count / SED / time relation;
  music: rephrase / genre / mood / tempo).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from audiox.data.schema import SchemaError, format_span, parse_span, validate_annotation

__all__ = [
    "STEP1_PROMPT",
    "STEP2_PROMPT",
    "AnnotationFailure",
    "GeminiClient",
    "LLMClient",
    "OpenAICompatClient",
    "add_cli",
    "cascade",
    "strong_label_annotations",
    "template_augment",
    "validate_augmentation",
]

log = logging.getLogger(__name__)
AUDIO_PERSPECTIVES = ("rephrase", "category", "sed", "time_relation")
MUSIC_PERSPECTIVES = ("rephrase", "genre", "mood", "tempo")

STEP1_PROMPT = """You annotate a 10-second audio clip. Grounding labels (may be incomplete): {hints}.
Answer with JSON only, in this schema:
{{"caption": str, "category": {{label: count (int) or null for continuous sounds}},
 "SED": [{{"MM:SS.sss-MM:SS.sss": description}}], "time_relation": "A, B" (order of first occurrence) or "interleave"}}
For music instead answer {{"caption": str, "genre": str, "mood": str, "instrument": [str], "tempo": str}}."""

STEP2_PROMPT = """Here is an annotation of the attached audio: {annotation}
Write new captions that stay faithful to it, as JSON only: {{{keys}}}, each a list of 1-3 strings:
{explain}"""


class AnnotationFailure(RuntimeError):
    """A request that never produced a valid answer (after all retries)."""


class LLMClient:
    """Shared machinery: retries, backoff, rate limit, cache, JSON extraction and validation."""

    provider = "base"
    key_env = ""

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        min_interval: float = 0.0,
        cache_dir: str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.model, self.base_url = model, base_url.rstrip("/")
        self.key_env = api_key_env or self.key_env
        self._key = os.environ.get(self.key_env) if self.key_env else None
        self.max_retries, self.backoff, self.min_interval = max_retries, backoff, min_interval
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self._last = 0.0
        self.requests = 0  # HTTP requests actually sent

    # Provider-specific ----------------------------------------------------------------------------
    def _request(self, prompt: str, audio: bytes | None, mime: str) -> tuple[str, dict, dict]:
        raise NotImplementedError

    def _text(self, body: dict) -> str:
        raise NotImplementedError

    # Shared ---------------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _cache_path(self, prompt: str, audio: bytes | None) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha256(
            json.dumps([self.provider, self.model, prompt, hashlib.sha256(audio or b"").hexdigest()]).encode()
        ).hexdigest()
        return self.cache_dir / h[:2] / f"{h}.json"

    def _wait_turn(self) -> None:
        delay = self._last + self.min_interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._last = time.monotonic()

    @staticmethod
    def extract_json(text: str) -> Any:
        """The JSON object in a reply (tolerates ```json fences and text around one object)."""
        m = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
        text = m.group(1) if m else text
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end < start:
            raise ValueError("no JSON object in the reply")
        return json.loads(text[start : end + 1])

    def complete_json(
        self, prompt: str, validate: Callable[[Any], Any], audio: bytes | None = None, mime: str = "audio/flac"
    ) -> dict:
        """Ask until the reply is JSON that ``validate`` accepts; cache and return it."""
        cache = self._cache_path(prompt, audio)
        if cache is not None and cache.exists():
            return json.loads(cache.read_text())
        errors = []
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self._wait_turn()
            url, headers, body = self._request(prompt, audio, mime)
            self.requests += 1
            try:
                r = self._http.post(url, headers=headers, json=body)
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}")
                log.warning("%s request failed (attempt %d): %s", self.provider, attempt + 1, type(e).__name__)
                continue
            if r.status_code != 200:
                errors.append(f"HTTP {r.status_code}")
                log.warning("%s answered HTTP %d (attempt %d)", self.provider, r.status_code, attempt + 1)
                if r.status_code in (400, 401, 403, 404):
                    break  # not transient: retrying cannot help
                continue
            try:
                value = validate(self.extract_json(self._text(r.json())))
            except (ValueError, KeyError, IndexError, TypeError, SchemaError) as e:
                errors.append(f"invalid answer: {self._redact(str(e))[:120]}")
                log.warning(
                    "%s gave an invalid answer (attempt %d): %s", self.provider, attempt + 1, self._redact(str(e))[:120]
                )
                continue
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(f".{cache.name}.tmp.{os.getpid()}")
                tmp.write_text(json.dumps(value))
                os.replace(tmp, cache)
            return value
        raise AnnotationFailure(
            f"{self.provider}/{self.model}: no valid answer after {len(errors)} tries: " + "; ".join(errors)
        )


class GeminiClient(LLMClient):
    """Google Gemini ``generateContent`` (key from ``GEMINI_API_KEY``, sent as ``x-goog-api-key``)."""

    provider, key_env = "gemini", "GEMINI_API_KEY"

    def __init__(
        self, model: str = "gemini-2.5-pro", base_url: str = "https://generativelanguage.googleapis.com", **kw: Any
    ):
        super().__init__(model, base_url, **kw)
        if not self._key:
            raise ValueError(f"set {self.key_env} in the environment for the Gemini backend")

    def _request(self, prompt: str, audio: bytes | None, mime: str) -> tuple[str, dict, dict]:
        parts: list[dict] = [{"text": prompt}]
        if audio is not None:
            parts.append({"inline_data": {"mime_type": mime, "data": base64.b64encode(audio).decode()}})
        body = {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": {"responseMimeType": "application/json", "temperature": 0.2},
        }
        return f"{self.base_url}/v1beta/models/{self.model}:generateContent", {"x-goog-api-key": self._key}, body

    def _text(self, body: dict) -> str:
        return "".join(p.get("text", "") for p in body["candidates"][0]["content"]["parts"])


class OpenAICompatClient(LLMClient):
    """OpenAI-compatible ``/v1/chat/completions`` (e.g. vLLM serving Qwen2-Audio); key optional
    (``OPENAI_API_KEY``), sent as a Bearer header."""

    provider, key_env = "openai", "OPENAI_API_KEY"

    def __init__(self, model: str = "Qwen/Qwen2-Audio-7B-Instruct", base_url: str = "http://127.0.0.1:8000", **kw: Any):
        super().__init__(model, base_url, **kw)

    def _request(self, prompt: str, audio: bytes | None, mime: str) -> tuple[str, dict, dict]:
        content: list[dict] = [{"type": "text", "text": prompt}]
        if audio is not None:
            fmt = mime.split("/")[-1]
            content.append(
                {"type": "input_audio", "input_audio": {"data": base64.b64encode(audio).decode(), "format": fmt}}
            )
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0.2,
            "response_format": {"type": "json_object"},
        }
        return f"{self.base_url}/v1/chat/completions", headers, body

    def _text(self, body: dict) -> str:
        return body["choices"][0]["message"]["content"]


def validate_augmentation(kind: str) -> Callable[[Any], dict]:
    keys = MUSIC_PERSPECTIVES if kind == "music" else AUDIO_PERSPECTIVES

    def check(d: Any) -> dict:
        if not isinstance(d, dict) or set(keys) - set(d):
            raise SchemaError(f"augmentation must have the keys {keys}")
        for k in keys:
            if not isinstance(d[k], list) or not d[k] or not all(isinstance(s, str) and s.strip() for s in d[k]):
                raise SchemaError(f"augmentation {k!r} must be a non-empty list of strings")
        return {k: d[k] for k in keys}

    return check


def cascade(
    audio: bytes,
    step1: LLMClient,
    step2: LLMClient | None = None,
    hints: list[str] | None = None,
    mime: str = "audio/flac",
) -> dict:
    """Two-step annotation: step 1 gives the IF-caps-Pro fields, step 2 (or templates) the captions."""
    ann = step1.complete_json(
        STEP1_PROMPT.format(hints=", ".join(hints or []) or "none"), validate_annotation, audio, mime
    )
    kind = "music" if "genre" in ann else "sfx"
    ann = dict(ann, kind=kind)
    if step2 is None:
        return dict(ann, captions=template_augment(ann))
    keys = MUSIC_PERSPECTIVES if kind == "music" else AUDIO_PERSPECTIVES
    explain = (
        "rephrase: the caption in other words; genre / mood / tempo: a caption built around that field"
        if kind == "music"
        else "rephrase: the caption in other words; category: from categories and counts; "
        "sed: from the timestamps; time_relation: from the order of events"
    )
    prompt = STEP2_PROMPT.format(
        annotation=json.dumps({k: v for k, v in ann.items() if k != "kind"}),
        keys=", ".join(f'"{k}": [str]' for k in keys),
        explain=explain,
    )
    return dict(ann, captions=step2.complete_json(prompt, validate_augmentation(kind), audio, mime))


# Deterministic annotation from strong labels ----------------------------------------------------------


def _events_relation(events: list[dict]) -> str:
    from audiox.data.synth.world import time_relation

    return time_relation(events)


def strong_label_annotations(
    tsv: str | Path, continuous_after: float = 3.0, continuous_labels: set[str] | None = None
) -> dict[str, dict]:
    """AudioSet-Strong style TSV (``file onset offset label``, header optional) -> annotation per file.

    A label is continuous (count ``null``) when it is in ``continuous_labels`` or any occurrence lasts
    longer than ``continuous_after`` seconds; otherwise its count is its number of occurrences.
    """
    rows: dict[str, list[dict]] = {}
    with open(tsv, newline="") as f:
        for i, row in enumerate(csv.reader(f, delimiter="\t")):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 4:
                raise ValueError(f"{tsv}:{i + 1}: want 4 tab-separated fields (file onset offset label)")
            try:
                on, off = float(row[1]), float(row[2])
            except ValueError:
                if i == 0:
                    continue  # header
                raise ValueError(f"{tsv}:{i + 1}: onset/offset must be numbers") from None
            if off < on:
                raise ValueError(f"{tsv}:{i + 1}: offset before onset")
            rows.setdefault(row[0], []).append({"name": row[3].strip(), "onset": on, "offset": off})
    out = {}
    for file, events in rows.items():
        events.sort(key=lambda e: (e["onset"], e["name"]))
        cont = set(continuous_labels or ()) | {e["name"] for e in events if e["offset"] - e["onset"] > continuous_after}
        category: dict[str, int | None] = {}
        for e in events:
            category[e["name"]] = None if e["name"] in cont else (category.get(e["name"]) or 0) + 1
        rel = _events_relation(events)
        ann = {
            "audio_id": file,
            "kind": "sfx",
            "category": category,
            "SED": [{format_span(e["onset"], e["offset"]): e["name"]} for e in events],
            "time_relation": rel,
        }
        ann["caption"] = _describe(category, rel)
        ann["captions"] = template_augment(ann)
        out[file] = validate_annotation(ann)
    return out


def _count_phrase(name: str, count: int | None) -> str:
    if count is None:
        return name
    return f"{name} ({'once' if count == 1 else 'twice' if count == 2 else f'{count} times'})"


def _describe(category: dict, rel: str) -> str:
    names = [n.strip() for n in rel.split(",")] if rel != "interleave" else list(category)
    items = [_count_phrase(n, category.get(n)) for n in names]
    if rel == "interleave":
        return "Overlapping sounds: " + ", ".join(items) + "."
    return items[0][:1].upper() + items[0][1:] + "".join(f", then {x}" for x in items[1:]) + "."


def template_augment(ann: dict) -> dict[str, list[str]]:
    """Offline captions from the structured fields (four perspectives for audio, four for music)."""
    if "genre" in ann:
        inst = ", ".join(ann["instrument"])
        return {
            "rephrase": [ann["caption"], f"A {ann['genre']} piece with {inst}; the mood is {ann['mood']}."],
            "genre": [f"A {ann['genre']} track featuring {inst}."],
            "mood": [f"{ann['mood'][:1].upper()}{ann['mood'][1:]} music played on {inst}."],
            "tempo": [f"A {ann['tempo']} tempo piece with {inst}."],
        }
    cat = ann["category"]
    counted = [_count_phrase(n, c) for n, c in cat.items()]
    spans = []
    for entry in ann["SED"]:
        ((span, text),) = entry.items()
        on, off = parse_span(span)
        spans.append(f"{text} from {on:.1f} to {off:.1f} seconds")
    rel = ann["time_relation"]
    if rel == "interleave":
        rel_caps = ["The sounds " + ", ".join(cat) + " overlap or alternate."]
    else:
        order = [n.strip() for n in rel.split(",")]
        rel_caps = [
            ("First " + order[0] + "".join(f", then {x}" for x in order[1:]) + ".")
            if len(order) > 1
            else f"Only {order[0]} is heard."
        ]
    return {
        "rephrase": [ann["caption"]],
        "category": ["The audio contains " + ", ".join(counted) + "."],
        "sed": ["; ".join(spans) + "." if spans else ann["caption"]],
        "time_relation": rel_caps,
    }


# CLI ---------------------------------------------------------------------------------------------------


def _client(name: str, model: str | None, base_url: str | None, cache: str | None) -> LLMClient:
    kw: dict[str, Any] = {"cache_dir": cache}
    if model:
        kw["model"] = model
    if base_url:
        kw["base_url"] = base_url
    if name == "gemini":
        return GeminiClient(**kw)
    if name == "openai":
        return OpenAICompatClient(**kw)
    raise ValueError(f"unknown backend {name!r} (gemini | openai)")


def _write_jsonl_atomic(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    os.replace(tmp, path)


def _run(a: argparse.Namespace) -> None:
    from tqdm import tqdm

    out = Path(a.out)
    if a.mode == "strong":
        anns = strong_label_annotations(a.input)
        _write_jsonl_atomic(out, list(anns.values()))
        print(f"{len(anns)} annotations -> {out}")
        return
    done: dict[str, dict] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done[r["audio_id"]] = r
    failures: list[dict] = []
    if a.mode == "augment":
        items = [json.loads(line) for line in Path(a.input).read_text().splitlines() if line.strip()]
        client = None if a.backend == "templates" else _client(a.backend, a.model, a.base_url, a.cache)
        for ann in tqdm(items, desc="augment", disable=a.quiet):
            key = ann.get("audio_id", "")
            if key in done:
                continue
            validate_annotation(ann)
            kind = "music" if "genre" in ann else "sfx"
            try:
                if client is None:
                    caps = template_augment(ann)
                else:
                    keys = MUSIC_PERSPECTIVES if kind == "music" else AUDIO_PERSPECTIVES
                    prompt = STEP2_PROMPT.format(
                        annotation=json.dumps(ann), explain="", keys=", ".join(f'"{k}": [str]' for k in keys)
                    )
                    caps = client.complete_json(prompt, validate_augmentation(kind))
            except AnnotationFailure as e:
                failures.append({"audio_id": key, "error": str(e)})
                continue
            done[key] = dict(ann, captions=caps)
            _write_jsonl_atomic(out, list(done.values()))
    else:  # llm: a folder of audio files, optional strong-label hints
        step1 = _client(a.backend, a.model, a.base_url, a.cache)
        step2 = None if a.step2 == "templates" else _client(a.step2, a.step2_model, a.step2_base_url, a.cache)
        hints = strong_label_annotations(a.hints) if a.hints else {}
        files = sorted(p for p in Path(a.input).iterdir() if p.suffix.lower() in (".flac", ".wav", ".mp3", ".ogg"))
        for p in tqdm(files, desc="annotate", disable=a.quiet):
            if p.name in done:
                continue
            h = list(hints.get(p.name, {}).get("category", {}))
            try:
                ann = cascade(p.read_bytes(), step1, step2, h, mime=f"audio/{p.suffix[1:].lower()}")
            except AnnotationFailure as e:
                failures.append({"audio_id": p.name, "error": str(e)})
                continue
            done[p.name] = dict(ann, audio_id=p.name)
            _write_jsonl_atomic(out, list(done.values()))
    if failures:
        fail_path = out.with_name(out.name + ".failures.jsonl")
        _write_jsonl_atomic(fail_path, failures)
    print(f"{len(done)} annotations -> {out}; {len(failures)} failures")


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="stage-2 annotation (LLM cascade or strong labels) and augmentation",
        description="strong: TSV (file onset offset label) -> IF-caps-Pro JSONL. llm: a folder of "
        "audio -> step 1 (--backend) + step 2 (--step2) JSONL. augment: JSONL -> JSONL with captions "
        "from four perspectives. Keys: GEMINI_API_KEY / OPENAI_API_KEY. Resumable; failures are "
        "written to OUT.failures.jsonl, never as data.",
    )
    p.add_argument("mode", choices=["strong", "llm", "augment"])
    p.add_argument("input", help="TSV (strong), audio folder (llm) or annotation JSONL (augment)")
    p.add_argument("--out", required=True, help="output JSONL")
    p.add_argument("--backend", default="templates", help="gemini | openai (| templates for augment)")
    p.add_argument("--model")
    p.add_argument("--base-url")
    p.add_argument("--step2", default="templates", help="gemini | openai | templates")
    p.add_argument("--step2-model")
    p.add_argument("--step2-base-url")
    p.add_argument("--hints", help="strong-label TSV whose labels ground step 1")
    p.add_argument("--cache", help="response cache directory")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run)
