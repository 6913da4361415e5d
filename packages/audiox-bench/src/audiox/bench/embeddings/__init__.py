"""Embedding networks for the metrics (architectures written here; published weights from a path)."""

from audiox.bench.embeddings.aesthetics import AestheticsConfig, AudioboxAesthetics
from audiox.bench.embeddings.imagebind import ImageBindAV, ImageBindConfig
from audiox.bench.embeddings.panns import Cnn14, Cnn14Config, Cnn14Output
from audiox.bench.embeddings.vggish import VGGish, VGGishConfig

__all__ = ["AestheticsConfig", "AudioboxAesthetics", "Cnn14", "Cnn14Config", "Cnn14Output", "ImageBindAV",
           "ImageBindConfig", "VGGish", "VGGishConfig"]
