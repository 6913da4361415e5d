"""The deterministic offline T2A-bench judge for the synthetic world (detector + rule-based judgment)."""

from __future__ import annotations

import numpy as np

from audiox.bench.judges.detector import DetectorConfig, EventDetector
from audiox.bench.judges.rules import annotation_from_events, judge_record
from audiox.data.synth import CONTINUOUS

__all__ = ["OfflineJudge"]


class OfflineJudge:
    """Step 1 (blind annotation) by :class:`EventDetector`, step 2 by :func:`judge_record`."""

    def __init__(self, cfg: DetectorConfig = DetectorConfig(), tolerance: float = 1.0):
        self.detector = EventDetector(cfg)
        self.tolerance = tolerance

    def annotate(self, audio: np.ndarray, sample_rate: int) -> dict:
        events = [d.as_dict() for d in self.detector.detect(audio, sample_rate)]
        return annotation_from_events(events, set(CONTINUOUS))

    def judge(self, record: dict, audio: np.ndarray, sample_rate: int) -> dict:
        ann = self.annotate(audio, sample_rate)
        return {"id": record["id"], "type": record["type"], "annotation": ann,
                "prediction": judge_record(record, ann, self.tolerance)}
