"""T5 text encoder (paper Sec. VI-A: "The text inputs are encoded using T5-base").

``cfg.pretrained`` is a local folder (``save_pretrained`` layout), a hub id, or a ``.safetensors`` file with this
module's key names (``TextEncoder.save_weights``; sizes from the config fields); without it a T5 encoder is built
from the config fields with random weights, offline. ``cfg.tokenizer == "byt5"`` uses the byte-level ByT5
tokenizer, which needs no files; anything else is a tokenizer folder or hub id for ``AutoTokenizer``, such as one
that :func:`train_tokenizer` learned from a corpus's captions (``audiox-data tokenizer``). A model folder keeps its
tokenizer beside the weights (``tokenizer/``, see ``audiox.core.checkpoint``). The tokenizer is loaded on first
use, so building a model (e.g. on the meta device to count parameters) never touches the disk or the network.

Why a corpus tokenizer: a T5 trained from scratch over bytes must first learn to spell before it can tell "a bell"
from "a buzz", and the diffusion loss is a weak teacher for that. The bundled byte-level mini teacher's pooled
captions had cosine similarities of 0.78-0.98 between prompts with different sounds, and its velocity moved by only
1-3 % when the caption changed. Over word-level BPE tokens each sound word is its own embedding row from step 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, ByT5Tokenizer, PreTrainedTokenizerFast, T5Config, T5EncoderModel

from audiox.core.config import TextEncoderConfig
from audiox.core.encoders.common import FreezableModule, load_safetensors_strict

__all__ = ["TextEncoder", "resolve_pretrained", "train_tokenizer"]

#: T5's special tokens and ids: padding 0, end of sequence 1, unknown 2.
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer learned from ``texts`` (``tokenizers``), with T5's conventions: NFKC and lower
    case, ``</s>`` appended to every caption, ids 0 / 1 / 2 for ``<pad>`` / ``</s>`` / ``<unk>``. Any string
    tokenizes (the 256 byte symbols are always in the vocabulary); words frequent in ``texts`` become single tokens.
    The vocabulary stops below ``vocab_size`` when no pair occurs ``min_frequency`` times any more."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (the bytes and {SPECIAL_TOKENS}), got {vocab_size}")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    seen = 0

    def counted() -> Iterable[str]:  # texts may be a one-pass generator: count while the trainer reads it
        nonlocal seen
        for t in texts:
            seen += 1
            yield t

    tok.train_from_iterator(counted(), trainer)
    if seen == 0:
        raise ValueError("train_tokenizer: no texts")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def resolve_pretrained(name: str, what: str) -> tuple[str, bool]:
    """``(name, is_local)`` for a local path or a hub id; a path-looking name that does not exist is an error."""
    path = Path(name).expanduser()
    if path.exists():
        return str(path), True
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise FileNotFoundError(f"{what}: local path not found: {name}")
    return name, False


def _from_pretrained(loader: Any, name: str, what: str) -> Any:
    name, local = resolve_pretrained(name, what)
    try:
        return loader.from_pretrained(name, local_files_only=local)
    except (OSError, ValueError) as e:
        where = "the local folder" if local else "the hub (no network, or not cached?)"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"{what}: could not load {name!r} from {where}: {first}") from e


class TextEncoder(FreezableModule):
    """Captions -> token embeddings ``(B, L, D_t)`` and a bool mask ``(B, L)``, ``L = cfg.max_length``."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        local_file = bool(cfg.pretrained) and str(cfg.pretrained).endswith(".safetensors")
        if cfg.pretrained and not local_file:
            self.t5 = _from_pretrained(T5EncoderModel, cfg.pretrained, "text encoder")
            self._record_architecture()
        else:
            t5_cfg = T5Config(
                vocab_size=cfg.vocab_size,
                d_model=cfg.d_model,
                d_kv=cfg.d_kv,
                d_ff=cfg.d_ff,
                num_layers=cfg.num_layers,
                num_heads=cfg.num_heads,
                dropout_rate=0.0,  # conditioning features; dropout of whole modalities happens in MAF/CFG
                feed_forward_proj=cfg.feed_forward_proj,
            )
            self.t5 = T5EncoderModel(t5_cfg)
        self.out_dim: int = int(self.t5.config.d_model)
        self._tokenizer: Any = None
        # T5 ties its input embedding to ``shared``; ``load_state_dict(assign=True)`` (meta-device loading)
        # replaces the two tensors separately, so tie them again after every load.
        self.register_load_state_dict_post_hook(lambda module, _keys: module._tie_embeddings())
        if local_file:  # our own key names (``save_weights``), sizes from the config fields
            load_safetensors_strict(self, cfg.pretrained, "text encoder")
        self.freeze_(cfg.freeze)

    def _record_architecture(self) -> None:
        """Copy a loaded T5's sizes into ``cfg`` so a saved model (config.json) rebuilds the same network."""
        c = self.t5.config
        for name in ("d_model", "num_layers", "num_heads", "d_kv", "d_ff", "vocab_size", "feed_forward_proj"):
            setattr(self.cfg, name, getattr(c, name))

    def _tie_embeddings(self) -> None:
        self.t5.encoder.embed_tokens.weight = self.t5.shared.weight

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if self.cfg.tokenizer == "byt5":
                tok = ByT5Tokenizer()
            else:
                tok = _from_pretrained(AutoTokenizer, self.cfg.tokenizer, "text tokenizer")
            if len(tok) > self.t5.config.vocab_size:
                raise ValueError(
                    f"text encoder: tokenizer {self.cfg.tokenizer!r} has {len(tok)} tokens but the T5 embedding "
                    f"has {self.t5.config.vocab_size} (set text.vocab_size)"
                )
            self._tokenizer = tok
        return self._tokenizer

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids (B, L) long, mask (B, L) bool)`` truncated / padded to ``cfg.max_length``."""
        if isinstance(texts, str):
            raise TypeError("TextEncoder expects a list of strings, got one str")
        tok = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.cfg.max_length,
            return_tensors="pt",
        )
        return tok["input_ids"], tok["attention_mask"].bool()

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.t5.shared.weight.device
        if len(texts) == 0:
            L = self.cfg.max_length
            empty = torch.zeros(0, L, self.out_dim, device=device, dtype=self.t5.shared.weight.dtype)
            return empty, torch.zeros(0, L, dtype=torch.bool, device=device)
        ids, mask = self.tokenize(texts)
        ids, mask = ids.to(device), mask.to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            emb = self.t5(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, L, D_t)
        emb = emb * mask.unsqueeze(-1).to(emb.dtype)  # zero-pad positions past the caption
        assert emb.shape[1] == self.cfg.max_length, f"{emb.shape=} {self.cfg.max_length=}"
        return emb, mask
