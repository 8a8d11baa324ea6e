"""Token lists in ESPnet's layout: `<blank>`, `<unk>`, tokens by frequency, `<sos/eos>`.

This is the order ESPnet's asr.sh produces (`tokenize_text --add_symbol
<blank>:0 --add_symbol <unk>:1 --add_symbol <sos/eos>:-1`): CTC blank must be
id 0 and sos/eos the last id; `<unk>` is looked up by name. Chinese is modelled
by characters; sentencepiece BPE/unigram is an option.
"""
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.fileio import atomic_write_text

PathLike = Union[str, Path]
BLANK, UNK, SOS_EOS, SPACE = "<blank>", "<unk>", "<sos/eos>", "<space>"
SPECIALS = (BLANK, UNK, SOS_EOS)


def read_texts(path: PathLike) -> List[str]:
    """Transcripts of a Kaldi `text` file (utterance id stripped)."""
    path = Path(path)
    if not path.is_file():
        raise DataPrepError(path, "text file not found")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            out.append(parts[1])
    if not out:
        raise DataPrepError(path, "no transcripts found")
    return out


def char_tokenize(text: str) -> List[str]:
    """Characters; whitespace becomes `<space>` (as ESPnet's char tokenizer does)."""
    return [SPACE if ch == " " else ch for ch in " ".join(text.split())]


def order_tokens(counts: Counter, cutoff: int = 0) -> List[str]:
    """ESPnet list from token counts: frequency descending, ties by token; drop count <= cutoff."""
    toks = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c > cutoff and t not in SPECIALS]
    return [BLANK, UNK] + toks + [SOS_EOS]


def train_bpe(texts: Iterable[str], model_prefix: PathLike, nbpe: int, mode: str = "unigram") -> Path:
    """Train a sentencepiece model (`<prefix>.model`); full character coverage for Chinese."""
    import sentencepiece as spm

    model_prefix = Path(model_prefix)
    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for t in texts:
            f.write(t + "\n")
        train_txt = f.name
    try:
        spm.SentencePieceTrainer.train(
            input=train_txt,
            model_prefix=str(model_prefix),
            vocab_size=nbpe,
            model_type=mode,
            character_coverage=1.0,
            input_sentence_size=100000000,
            hard_vocab_limit=False,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise DataPrepError(train_txt, f"sentencepiece training failed (nbpe={nbpe}): {e}") from None
    finally:
        Path(train_txt).unlink(missing_ok=True)
    return model_prefix.with_suffix(".model")


def make_token_list(
    text: PathLike,
    out: PathLike,
    token_type: str = "char",
    nbpe: int = 500,
    bpe_model_prefix: Optional[PathLike] = None,
    bpe_mode: str = "unigram",
    cutoff: int = 0,
) -> Dict:
    """Write the token list `out` (one token per line); returns a small summary."""
    texts = read_texts(text)
    counts: Counter = Counter()
    summary: Dict = {"token_type": token_type}
    if token_type == "char":
        for t in texts:
            counts.update(char_tokenize(t))
    elif token_type == "bpe":
        import sentencepiece as spm

        prefix = Path(bpe_model_prefix) if bpe_model_prefix else Path(out).parent / "bpe"
        model = train_bpe(texts, prefix, nbpe, bpe_mode)
        sp = spm.SentencePieceProcessor(model_file=str(model))
        for t in texts:
            counts.update(sp.encode(t, out_type=str))
        summary["bpe_model"] = str(model)
    else:
        raise ValueError(f"token_type must be 'char' or 'bpe', got {token_type!r}")
    tokens = order_tokens(counts, cutoff)
    atomic_write_text(out, "".join(t + "\n" for t in tokens))
    summary["num_tokens"] = len(tokens)
    logging.info("token list %s: %d tokens (%s)", out, len(tokens), token_type)
    return summary
