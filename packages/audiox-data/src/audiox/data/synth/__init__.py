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
    "EVENTS", "EVENT_NAMES", "COUNTABLE", "CONTINUOUS", "EventCategory", "INSTRUMENTS", "GENRES", "MusicSpec",
    "music_labels", "SynthConfig", "Event", "ClipSpec", "RenderedClip", "TRAIN", "EVAL_T2A", "EVAL_V2A",
    "EVAL_T2M", "sample_clip_spec", "render_clip", "render_audio", "annotate_spec", "clip_events",
    "time_relation", "spec_to_dict", "spec_from_dict", "make_prompt_sets", "clip_for_prompt",
]
