"""T2A-bench judges: the deterministic offline judge (synthetic world), the two-step MLLM judge, V2A / T2M."""

from audiox.bench.judges.detector import Detection, DetectorConfig, EventDetector
from audiox.bench.judges.offline import OfflineJudge
from audiox.bench.judges.rules import METRICS, aggregate, annotation_from_events, judge_record

__all__ = ["EventDetector", "DetectorConfig", "Detection", "OfflineJudge", "judge_record", "aggregate",
           "annotation_from_events", "METRICS"]
