"""Embedding networks for the metrics (architectures written here; published weights from a path)."""

from audiox.bench.embeddings.panns import Cnn14, Cnn14Config, Cnn14Output
from audiox.bench.embeddings.vggish import VGGish, VGGishConfig

__all__ = ["Cnn14", "Cnn14Config", "Cnn14Output", "VGGish", "VGGishConfig"]
