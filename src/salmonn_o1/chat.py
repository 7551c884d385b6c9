"""ChatML token ids built piecewise, exactly as the released model saw them.

The release tokenises its prompt in pieces: the media placeholder stands
alone, followed by two *separate* newline tokens, then the question. Building
ids here (rather than tokenising one rendered string) keeps that, and gives
exact label masks: only assistant content and its `<|im_end|>` are targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from salmonn_o1.prompts import IM_END, IM_START, MEDIA_TOKEN, SYSTEM_PROMPT

IGNORE_INDEX = -100


@dataclass
class EncodedConversation:
    input_ids: list[int]
    labels: list[int]


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict],
    media_token_count: int = 0,
    add_generation_prompt: bool = True,
    system_prompt: str = SYSTEM_PROMPT,
) -> EncodedConversation:
    """ids and labels of a ChatML conversation with the media placeholder expanded.

    messages: [{"role": "user"|"assistant"|"system", "content": str}, ...]. If
    media is present and no user turn contains `<image>`, the first user turn
    gets it in front, as the release moves it there.
    add_generation_prompt: end with `<|im_start|>assistant\\n` when the last turn is a user turn.
    """
    im_start = tokenizer.convert_tokens_to_ids(IM_START)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    newline = _ids(tokenizer, "\n")
    media_id = tokenizer.convert_tokens_to_ids(MEDIA_TOKEN)
    messages = list(messages)
    if messages and messages[0]["role"] == "system":
        system_prompt = messages.pop(0)["content"]
    if media_token_count and not any(MEDIA_TOKEN in m["content"] for m in messages if m["role"] == "user"):
        first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[first_user] = {**messages[first_user], "content": f"{MEDIA_TOKEN}\n{messages[first_user]['content']}"}

    ids: list[int] = [im_start, *_ids(tokenizer, "system"), *newline, *_ids(tokenizer, system_prompt), im_end, *newline]
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    media_used = False
    for message in messages:
        role, content = message["role"], message["content"]
        head = [im_start, *_ids(tokenizer, role), *newline]
        if role == "assistant":
            body = [*_ids(tokenizer, content), im_end]
            ids += head + body + newline
            labels += [IGNORE_INDEX] * len(head) + body + [IGNORE_INDEX] * len(newline)
            continue
        body: list[int] = []
        if MEDIA_TOKEN in content:
            if media_used or content.count(MEDIA_TOKEN) > 1:
                raise ValueError(f"only one {MEDIA_TOKEN} placeholder per conversation is supported")
            before, after = content.split(MEDIA_TOKEN)
            # The release normalises the turn to "<image>\n" + rest and emits
            # [media] "\n" tok("\n" + rest): two separate newline tokens.
            rest = after.lstrip("\n")
            body += _ids(tokenizer, before) + [media_id] * media_token_count + newline + _ids(tokenizer, "\n" + rest)
            media_used = True
        else:
            body += _ids(tokenizer, content)
        turn = head + body + [im_end] + newline
        ids += turn
        labels += [IGNORE_INDEX] * len(turn)
    if add_generation_prompt and messages and messages[-1]["role"] != "assistant":
        tail = [im_start, *_ids(tokenizer, "assistant"), *newline]
        ids += tail
        labels += [IGNORE_INDEX] * len(tail)
    if media_token_count and not media_used:
        raise ValueError("media was given but the conversation has no user turn to hold it")
    return EncodedConversation(ids, labels)


def follow_up_ids(tokenizer: PreTrainedTokenizerBase, question: str) -> list[int]:
    """ids that continue a conversation after the assistant's `<|im_end|>`: a new user turn + assistant head."""
    newline = _ids(tokenizer, "\n")
    im_start = tokenizer.convert_tokens_to_ids(IM_START)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    return [*newline, im_start, *_ids(tokenizer, "user"), *newline, *_ids(tokenizer, question), im_end, *newline,
            im_start, *_ids(tokenizer, "assistant"), *newline]
