"""Small byte-level BPE tokenizers for the tiny and miniature models, trained offline.

Real checkpoints bring their own (Qwen2) tokenizer; ours only need the ChatML
special tokens, the media placeholder and `<end_of_step>` as single ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from salmonn_o1.prompts import (
    END_OF_STEP,
    FINAL_ANSWER_QUESTION,
    IM_END,
    IM_START,
    MEDIA_TOKEN,
    REASONING_INSTRUCTION,
    STEP_MARKED_INSTRUCTION,
    SYSTEM_PROMPT,
)

PAD_TOKEN = "<|endoftext|>"
# Order fixes the ids: pad 0, <|im_start|> 1, <|im_end|> 2, <image> 3, <end_of_step> 4.
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END, MEDIA_TOKEN]
DEFAULT_TOKENIZER_DIR = Path(__file__).parent / "assets" / "tokenizer"

# ChatML, as the released model's conversation template (qwen_1_5).
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

BASE_CORPUS = [
    f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n{IM_START}user\n{MEDIA_TOKEN}\n\n",
    f"{IM_END}\n{IM_START}assistant\n",
    STEP_MARKED_INSTRUCTION,
    REASONING_INSTRUCTION,
    FINAL_ANSWER_QUESTION,
    "Choose from:\nA. \nB. \nC. \nD. \nE. ",
    "1. 2. 3. 4. 5. 6. 7. 8. 9. 10. The answer is A. The answer is B. The answer is C. The answer is D. "
    "The answer is E. The answer is YES. The answer is NO.",
]


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE on `corpus` (plus the chat format's own words), wrapped for transformers."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(BASE_CORPUS) + list(corpus), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=IM_END, pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END, MEDIA_TOKEN], padding_side="left",
    )
    # A step marker is ordinary text for the released model; one id keeps splitting exact for ours.
    wrapped.add_tokens([END_OF_STEP])
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def has_tokenizer_files(directory: str | Path) -> bool:
    """Whether a checkpoint directory holds a tokenizer (tokenizer.json, or a BPE vocab.json)."""
    return any((Path(directory) / name).exists() for name in ("tokenizer.json", "vocab.json"))


def load_tokenizer(path: str | Path | None = None) -> PreTrainedTokenizerBase:
    """A tokenizer from a checkpoint directory or hub id; the bundled one when `path` is None."""
    tokenizer = AutoTokenizer.from_pretrained(str(path or DEFAULT_TOKENIZER_DIR))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD_TOKEN if PAD_TOKEN in tokenizer.get_vocab() else tokenizer.eos_token
    return tokenizer


def media_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    token_id = tokenizer.convert_tokens_to_ids(MEDIA_TOKEN)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {MEDIA_TOKEN} token")
    return int(token_id)


def time_text_ids(tokenizer: PreTrainedTokenizerBase, max_seconds: float, step: float = 0.5) -> list[list[int]]:
    """Token ids of " 0.0", " 0.5", ... up to `max_seconds`, as times are written inside a step
    ("from 3.5 s"), each row padded with -1 to the longest: the table of `time_token_mode="text"`."""
    rows = [tokenizer(f" {k * step:.1f}", add_special_tokens=False).input_ids
            for k in range(int(round(max_seconds / step)) + 1)]
    width = max(len(r) for r in rows)
    return [r + [-1] * (width - len(r)) for r in rows]
