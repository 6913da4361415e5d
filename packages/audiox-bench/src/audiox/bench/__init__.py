"""audiox.bench: quality metrics as the literature computes them, T2A-bench with judges, efficiency.

Public API::

    from audiox.bench import OfflineJudge, MLLMJudge, GeminiBackend, frechet_distance, kl_softmax, ...

    judge = OfflineJudge()                                   # deterministic synthetic-world T2A-bench judge
    out = judge.judge(record, audio, sample_rate)            # {"prediction": {"cat_acc": 1, ...}, "annotation": ...}
    d2 = frechet_distance(mu1, sigma1, mu2, sigma2)          # eigen-based, float64

Command line: ``audiox-bench {judge-validate,t2a,run,efficiency,metrics} --out DIR`` (see ``--help``).
Per-metric conventions: docs/metrics.md.
"""

from audiox.bench.efficiency import Setting, compare_efficiency, efficiency_table, parse_setting
from audiox.bench.embeddings import Cnn14, Cnn14Config, VGGish, VGGishConfig
from audiox.bench.judges import EventDetector, OfflineJudge, aggregate, judge_record
from audiox.bench.judges.av_music import T2MJudge, V2AJudge, estimate_tempo
from audiox.bench.judges.mllm import GeminiBackend, MLLMJudge, OpenAICompatibleBackend
from audiox.bench.metrics import (
    frechet_distance, frechet_distance_from_embeddings, gaussian_stats, inception_score, kl_sigmoid, kl_softmax,
    paired_cosine_score, steam,
)
from audiox.bench.t2a import judge_validate, run_t2a

__all__ = [
    "frechet_distance", "frechet_distance_from_embeddings", "gaussian_stats", "kl_softmax", "kl_sigmoid",
    "inception_score", "paired_cosine_score", "steam", "Cnn14", "Cnn14Config", "VGGish", "VGGishConfig",
    "EventDetector", "OfflineJudge", "judge_record", "aggregate", "V2AJudge", "T2MJudge", "estimate_tempo",
    "MLLMJudge", "GeminiBackend", "OpenAICompatibleBackend", "run_t2a", "judge_validate", "Setting",
    "parse_setting", "compare_efficiency", "efficiency_table",
]
