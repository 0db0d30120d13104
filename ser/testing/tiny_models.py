"""Tiny models built locally with ``save_pretrained`` — the same loading code as hub models, offline.

Used by the tests and the CPU benchmark; ``size="base"`` builds real-size architectures at random
initialization (wav2vec2-base, XLM-R base, Whisper large-v3 shapes) for GPU throughput runs —
throughput does not depend on the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
                    "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
WORDS = ["a", "the", "good", "bad", "fine", "happy", "sad", "angry", "great", "terrible", "okay", "today",
         "is", "was", "i", "am", "so", "not", "very", "day", "-", "'", ".", ","]


def _word_tokenizer(words: list[str], specials: list[str]):
    """A WordLevel tokenizer over ``words`` plus special tokens (tokenizers library, no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders

    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "<s>", "</s>"] + words)}
    for s in specials:
        vocab.setdefault(s, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(specials)
    return tok


def _quiet_transformers() -> None:
    """No per-file progress bars from save_pretrained/from_pretrained while building models."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def build_wav2vec2(path: str | Path, labels: list[str], size: str = "tiny", seed: int = 0, norm: str = "group"
                   ) -> Path:
    """A wav2vec2 sequence classifier with its feature extractor, saved with ``save_pretrained`` (``size``: tiny,
    base or large shapes). ``norm``:
    ``group`` (wav2vec2-base style, no attention mask) or ``layer`` (large-lv60 style, with an attention mask)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    _quiet_transformers()
    torch.manual_seed(seed)
    kw = dict(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    if size == "tiny":
        cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                             conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
                             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=16,
                             feat_extract_norm=norm, do_stable_layer_norm=norm == "layer", **kw)
    elif size == "large":                          # wav2vec2-large shapes
        cfg = Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                             feat_extract_norm=norm, do_stable_layer_norm=norm == "layer", **kw)
    else:
        cfg = Wav2Vec2Config(feat_extract_norm=norm, do_stable_layer_norm=norm == "layer", **kw)   # base-sized
    path = Path(path)
    Wav2Vec2ForSequenceClassification(cfg).save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=norm == "layer").save_pretrained(path)
    return path


def _end_at_once(model, eot: int, blank: int) -> None:
    """Make the decoder's output lean on one direction that end-of-text (then ``blank``) aligns with: a large bias
    on the final layer norm, and those tokens' (tied input and output) embeddings along it."""
    import torch

    with torch.no_grad():
        direction = torch.randn(model.config.d_model)
        direction /= direction.norm()
        model.model.decoder.layer_norm.bias.copy_(20 * direction)
        embeddings = model.model.decoder.embed_tokens.weight
        embeddings[eot] = 5 * direction
        embeddings[blank] = 4 * direction


def _words_only(model, first_timestamp: int) -> None:
    """Zero the (tied) embeddings of the timestamp tokens, so their logits are 0 and a word or end-of-text wins:
    a random model then decodes words instead of timestamps that decode to no text."""
    import torch

    with torch.no_grad():
        model.model.decoder.embed_tokens.weight[first_timestamp:] = 0.0


def build_sentiment(path: str | Path, labels: tuple[str, ...] = ("negative", "neutral", "positive"),
                    size: str = "tiny", seed: int = 0) -> Path:
    """An XLM-RoBERTa text classifier with a local WordLevel tokenizer (``size='base'``: XLM-R base shapes)."""
    import torch
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForSequenceClassification

    _quiet_transformers()
    torch.manual_seed(seed)
    tok = PreTrainedTokenizerFast(tokenizer_object=_word_tokenizer(WORDS, []), unk_token="<unk>",
                                  pad_token="<pad>", bos_token="<s>", eos_token="</s>", model_max_length=128)
    kw = dict(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
              pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if size == "tiny":
        cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=37, max_position_embeddings=160, **kw)
    else:
        cfg = XLMRobertaConfig(vocab_size=250002, max_position_embeddings=514, **kw)
    path = Path(path)
    XLMRobertaForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


SILENT_WINDOW_S = 10
"""The silent tiny Whisper's window in seconds (released Whispers: 30): the demo's clips are 1–6 s long."""


def build_whisper(path: str | Path, size: str = "tiny", seed: int = 0, silent: bool = False,
                  words: bool = False) -> Path:
    """A Whisper model converted for faster-whisper (CTranslate2), with a local tokenizer.

    ``size='large-v3'`` uses Whisper large-v3 shapes (128 mel bins, 32+32 layers, d_model 1280). A random
    model rarely predicts end-of-text, so it decodes to the length limit; ``silent`` makes end-of-text its first
    choice and a special token (which decodes to no text) its second, so every transcript is empty at the cost of
    the encoder and two decoder steps (the demo's offline ASR: meaningless transcripts either way); its tiny shape
    is narrower still (width 8) and its window 10 s instead of 30 (``SILENT_WINDOW_S``: the encoder attends over a
    third of the positions; ~5 instead of ~17 ms a clip on a CPU, most of it nothing reads). ``words``
    keeps it from choosing timestamp tokens, so it decodes words (tests that compare decoding paths need text).
    """
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    _quiet_transformers()
    torch.manual_seed(seed)
    tok = _word_tokenizer(WORDS, WHISPER_SPECIALS + [f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    vocab = tok.get_vocab_size()
    ids = {s: tok.token_to_id(s) for s in WHISPER_SPECIALS}
    common = dict(vocab_size=vocab, max_target_positions=448, max_source_positions=1500,
                  decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
                  pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
                  begin_suppress_tokens=[], suppress_tokens=[])
    if size == "tiny":
        width, heads = (8, 1) if silent else (32, 2)
        window = SILENT_WINDOW_S if silent else 30
        cfg = WhisperConfig(d_model=width, encoder_layers=1, decoder_layers=1, encoder_attention_heads=heads,
                            decoder_attention_heads=heads, encoder_ffn_dim=2 * width, decoder_ffn_dim=2 * width,
                            num_mel_bins=80, **{**common, "max_source_positions": 50 * window})
        n_mels = 80
    else:
        cfg = WhisperConfig(d_model=1280, encoder_layers=32, decoder_layers=32, encoder_attention_heads=20,
                            decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120,
                            num_mel_bins=128, **common)
        n_mels, window = 128, 30
    path = Path(path)
    src = path.with_name(path.name + "-hf")
    model = WhisperForConditionalGeneration(cfg)
    if silent:
        _end_at_once(model, ids["<|endoftext|>"], ids["<|nospeech|>"])
    if words:
        _words_only(model, tok.token_to_id("<|0.00|>"))
    model.save_pretrained(src)
    WhisperFeatureExtractor(feature_size=n_mels, chunk_length=window).save_pretrained(src)
    tok.save(str(src / "tokenizer.json"))
    ctranslate2.converters.TransformersConverter(str(src), copy_files=["tokenizer.json", "preprocessor_config.json"],
                                                 load_as_float16=size != "tiny").convert(str(path), force=True)
    (path / "ser_tiny.json").write_text(json.dumps({"size": size, "vocab": vocab}))
    return path
