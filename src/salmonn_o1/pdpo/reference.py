"""The pairs stage's reference log-probs through the `Decoder`: each prompt and video once.

`loss.precompute_reference_logps` scores a pair as training sees it: two full rows (prompt, media,
prefix, continuation), each encoding the video and running the whole prompt again. A question's
pairs all begin with the same prompt and video, and a step pair's two rows the same steps too, so
here the rows go through `Decoder.tail_logits`: each distinct media input is encoded once, the
prefix its rows share is prefilled once (its keys and values shared, `kv_cache`), and only the
continuation's positions get logits. The sums are those of the training forward up to float
rounding (a test holds them to it), so the DPO margin still starts at zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.decoding import Decoder
from salmonn_o1.pdpo.batching import tail_calls
from salmonn_o1.pdpo.objective import DPOObjective
from salmonn_o1.pdpo.pairs import as_record, encode_pair


@torch.no_grad()
def shared_prefix_reference_logps(decoder: Decoder, objective: DPOObjective, records: Sequence[dict[str, Any]],
                                  batch_size: int = 16) -> list[dict[str, Any]]:
    """Copies of the records with `ref_logps` = {"chosen", "rejected"}: the summed log-probs of each
    continuation under the decoder's model, `batch_size` sequences (a pair is two) a call."""
    out = [dict(r) for r in records]
    rows: list[tuple[int, str, list[int], int, Any]] = []  # (record, side, ids, scored positions, features)
    for i, record in enumerate(out):
        pair = as_record(record)
        for side, sample in zip(("chosen", "rejected"),
                                encode_pair(objective.processor, pair, objective.features(pair.media))):
            scored = sum(1 for label in sample.labels if label != IGNORE_INDEX)
            rows.append((i, side, list(sample.input_ids), scored, sample.media))
        out[i]["ref_logps"] = {}
    media = decoder.encode_media([features for *_, features in rows])
    # What a pair's two rows share (prompt, video, steps) is pinned once, less the position predicting
    # the continuation (`batching.tail_calls`).
    for chunk, keep, (logits,) in tail_calls(decoder, [ids for _, _, ids, _, _ in rows], [media],
                                             [scored + 1 for *_, scored, _ in rows], max(batch_size, 1)):
        for b, k in enumerate(chunk):  # position t's logits predict token t + 1
            i, side, ids, scored, _ = rows[k]
            predicted = logits[b, keep - 1 - scored:keep - 1].float().log_softmax(-1)
            targets = torch.tensor(ids[len(ids) - scored:], device=predicted.device).unsqueeze(-1)
            out[i]["ref_logps"][side] = float(predicted.gather(-1, targets).sum())
    return out
