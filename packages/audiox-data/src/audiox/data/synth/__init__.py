"""The synthetic audio-visual world (DESIGN.md): a fixed sound-event vocabulary, music with known
instrument / tempo / mode, exact IF-caps-Pro annotations, and held-out T2A-bench / V2A / T2M prompts.

The event vocabulary (:data:`EVENTS`) and :func:`clip_events` are public for offline judges.
"""

from audiox.data.synth.events import CONTINUOUS, COUNTABLE, EVENT_NAMES, EVENTS, EventCategory
from audiox.data.synth.music import GENRES, INSTRUMENTS, MusicSpec, music_labels
from audiox.data.synth.prompts import clip_for_prompt, make_prompt_sets
from audiox.data.synth.world import (
    EVAL_T2A,
    EVAL_T2M,
    EVAL_V2A,
    TRAIN,
    ClipSpec,
    Event,
    RenderedClip,
    SynthConfig,
    annotate_spec,
    clip_events,
    render_audio,
    render_clip,
    sample_clip_spec,
    spec_from_dict,
    spec_to_dict,
    time_relation,
)

__all__ = [
    "CONTINUOUS",
    "COUNTABLE",
    "EVAL_T2A",
    "EVAL_T2M",
    "EVAL_V2A",
    "EVENTS",
    "EVENT_NAMES",
    "GENRES",
    "INSTRUMENTS",
    "TRAIN",
    "ClipSpec",
    "Event",
    "EventCategory",
    "MusicSpec",
    "RenderedClip",
    "SynthConfig",
    "annotate_spec",
    "clip_events",
    "clip_for_prompt",
    "make_prompt_sets",
    "music_labels",
    "render_audio",
    "render_clip",
    "sample_clip_spec",
    "spec_from_dict",
    "spec_to_dict",
    "time_relation",
]
