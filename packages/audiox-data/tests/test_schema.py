import copy

import pytest

from audiox.data.schema import SchemaError, format_span, parse_span, validate_annotation

GOOD_AUDIO = {
    "caption": "A woman is speaking continuously, while a dog yips twice in the background.",
    "category": {"Female speech": None, "Yip": 2, "Background noise": None},
    "SED": [{"00:00-00:09": "A woman is speaking."}, {"00:00.250-00:01.000": "A dog yips."}],
    "time_relation": "interleave",
    "audio_id": "TATdZPmzMU8_90000",
}
GOOD_MUSIC = {
    "caption": "A gentle track.",
    "genre": "Acoustic Pop",
    "mood": "Gentle",
    "instrument": ["Piano"],
    "tempo": "Slow to Moderate",
}


def test_good_annotations_pass():
    assert validate_annotation(GOOD_AUDIO) is GOOD_AUDIO
    assert validate_annotation(GOOD_MUSIC) is GOOD_MUSIC


@pytest.mark.parametrize(
    "path,value",
    [
        (("caption",), ""),
        (("category",), {}),
        (("category",), {"Yip": 0}),
        (("category",), {"Yip": 2.5}),
        (("category",), {"Yip": True}),
        (("SED",), "00:00-00:09"),
        (("SED",), [{"0:00-0:09": "x"}]),
        (("SED",), [{"00:05-00:01": "ends before it starts"}]),
        (("SED",), [{"00:00-00:01": "a", "00:02-00:03": "two spans in one entry"}]),
        (("time_relation",), None),
    ],
)
def test_bad_audio_annotations_fail(path, value):
    bad = copy.deepcopy(GOOD_AUDIO)
    bad[path[0]] = value
    with pytest.raises(SchemaError):
        validate_annotation(bad)


@pytest.mark.parametrize("key,value", [("instrument", []), ("instrument", "Piano"), ("mood", ""), ("tempo", 120)])
def test_bad_music_annotations_fail(key, value):
    bad = dict(GOOD_MUSIC, **{key: value})
    with pytest.raises(SchemaError):
        validate_annotation(bad)


def test_missing_field_fails():
    bad = {k: v for k, v in GOOD_AUDIO.items() if k != "SED"}
    with pytest.raises(SchemaError, match="SED"):
        validate_annotation(bad)


def test_span_round_trip():
    assert format_span(61.25, 62.5) == "01:01.250-01:02.500"
    assert parse_span("01:01.250-01:02.500") == (61.25, 62.5)
    assert parse_span("00:02-00:06") == (2.0, 6.0)
