"""Print the parameter table of each preset (built on the meta device: no memory, no weights)."""

import torch

from audiox.core import PRESETS, AudioXModel, get_config

COLS = ["text_encoder", "video_encoder", "sync_encoder", "autoencoder", "maf", "dit", "trainable", "total"]

print("| preset | " + " | ".join(COLS) + " |")
print("|---" * (len(COLS) + 1) + "|")
for name in PRESETS:
    with torch.device("meta"):
        counts = AudioXModel(get_config(name)).num_parameters()
    print(f"| {name} | " + " | ".join(f"{counts[c] / 1e6:.2f}M" for c in COLS) + " |")
