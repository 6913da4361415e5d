import io

import av
import numpy as np
import pytest

from audiox.data.media import decode_video, encode_mp4


def test_decode_video_matches_per_frame_conversion_and_the_source():
    rng = np.random.default_rng(0)
    # smooth colour fields (what a codec keeps) that change over time, 20 frames of 48x64
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.stack([
        np.stack([(xx * 4 + 10 * t) % 256, (yy * 5 + 7 * t) % 256, np.full_like(xx, 40 + 9 * t)], -1)
        for t in range(20)
    ]).astype(np.uint8)
    frames = np.clip(frames.astype(int) + rng.integers(-2, 3, frames.shape), 0, 255).astype(np.uint8)
    data = encode_mp4(frames, 25.0, crf=10)
    out, fps = decode_video(data)
    assert fps == pytest.approx(25.0) and out.shape == frames.shape and out.dtype == np.uint8
    with av.open(io.BytesIO(data)) as f:  # the plain per-frame conversion: the shared reformatter must equal it
        ref = np.stack([fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)])
    np.testing.assert_array_equal(out, ref)
    assert np.abs(out.astype(int) - frames.astype(int)).mean() < 12  # and it is the video that was encoded
    first, _ = decode_video(data, max_frames=3)
    np.testing.assert_array_equal(first, ref[:3])
