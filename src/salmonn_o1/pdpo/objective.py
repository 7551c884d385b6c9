"""`DPOObjective`: pDPO pair records -> batches -> the soft/hard-label DPO loss.

It plugs into the shared training engine through the `Objective` protocol
(`salmonn_o1.train.objective`): the engine owns data order, accumulation,
checkpoints and logging; this class turns pair records (dicts as written by
`salmonn-o1 pdpo pairs`, or `PairRecord`s) into one right-padded batch and a
batch into (loss, metrics).

Batch layout: rows 0..B-1 are the chosen sequences, rows B..2B-1 the rejected
ones, each row prompt + media + shared prefix + continuation with labels on the
continuation only. Each row carries its own copy of the media features, so one
plain `model(**inputs)` call scores both halves (DDP-safe, at the cost of
running the encoders twice per pair).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from salmonn_o1.pdpo.loss import disable_dropout, dpo_loss, has_adapters, pair_forward, reference_logps
from salmonn_o1.pdpo.media import FeatureCache
from salmonn_o1.pdpo.pairs import DEFAULT_MU, LABEL_MODES, PairRecord, as_record, encode_pair, pair_label
from salmonn_o1.processor import SalmonnO1Processor

DEFAULT_BETA = 0.1  # the paper does not publish beta; see docs/pdpo.md


class DPOObjective:
    """collate(pair records) -> batch | None; loss(model, batch) -> (loss, metrics).

    beta: DPO temperature. sft_weight: weight of an extra mean-token cross-entropy
    on the chosen continuations (0 = off). label_mode: "hard" (1[p > p']) or
    "soft" (sigma((p - p') / mu)), recomputed from each record's values so one
    pair file serves both; records without values keep their stored label.
    max_length: pairs whose longer sequence exceeds it are skipped (counted).
    keep_dropout: by default the first `loss` call switches the model's dropout off
    (`loss.disable_dropout`), since the reference log-probs were computed without it.
    """

    name = "pdpo"

    def __init__(
        self,
        processor: SalmonnO1Processor,
        beta: float = DEFAULT_BETA,
        sft_weight: float = 0.0,
        label_mode: str = "hard",
        mu: float = DEFAULT_MU,
        max_length: int | None = None,
        media_cache_size: int = 32,
        keep_dropout: bool = False,
    ):
        if label_mode not in LABEL_MODES:
            raise ValueError(f"unknown label_mode {label_mode!r}; choose from {', '.join(LABEL_MODES)}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.processor = processor
        self.beta = beta
        self.sft_weight = sft_weight
        self.label_mode = label_mode
        self.mu = mu
        self.max_length = max_length
        self.features = FeatureCache(processor, media_cache_size)
        self.skipped = 0  # pairs dropped for length, over the objective's life
        self.keep_dropout = keep_dropout
        self._dropout_off: set[int] = set()

    def label(self, record: PairRecord) -> float:
        if record.chosen.value is None or record.rejected.value is None:
            return float(record.label)
        return pair_label(record.chosen.value, record.rejected.value, self.label_mode, self.mu)

    def collate(self, examples: list[PairRecord | dict[str, Any]], use_reference: bool = True) -> dict[str, Any] | None:
        records = [as_record(e) for e in examples]
        chosen, rejected, kept = [], [], []
        for i, record in enumerate(records):
            c, r = encode_pair(self.processor, record, self.features(record.media))
            if self.max_length is not None and max(len(c.input_ids), len(r.input_ids)) > self.max_length:
                self.skipped += 1
                continue
            chosen.append(c)
            rejected.append(r)
            kept.append(i)
        if not kept:
            return None
        batch: dict[str, Any] = self.processor.collate(chosen + rejected, padding_side="right")
        kept_records = [records[i] for i in kept]
        batch["pair_labels"] = torch.tensor([self.label(r) for r in kept_records], dtype=torch.float32)
        batch["is_step_pair"] = torch.tensor([r.kind == "step" for r in kept_records])
        if use_reference and all(r.ref_logps is not None for r in kept_records):
            batch["ref_chosen_logps"] = torch.tensor([r.ref_logps["chosen"] for r in kept_records])
            batch["ref_rejected_logps"] = torch.tensor([r.ref_logps["rejected"] for r in kept_records])
        batch["kept"] = kept  # indices into `examples`, for writing results back
        batch["num_tokens"] = int(batch["attention_mask"].sum())  # the engine's throughput counter
        return batch

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        if not self.keep_dropout and id(model) not in self._dropout_off:
            disable_dropout(model)
            self._dropout_off.add(id(model))
        policy_chosen, policy_rejected, chosen_tokens = pair_forward(model, batch)
        if "ref_chosen_logps" in batch:
            ref_chosen, ref_rejected = batch["ref_chosen_logps"], batch["ref_rejected_logps"]
        elif has_adapters(model):
            ref_chosen, ref_rejected = reference_logps(model, batch)
        else:
            raise ValueError("pairs without reference log-probs and a model without LoRA adapters: run "
                             "`salmonn-o1 pdpo pairs` (it stores them) or precompute_reference_logps first")
        ref_chosen = ref_chosen.to(policy_chosen)
        ref_rejected = ref_rejected.to(policy_rejected)
        out = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, batch["pair_labels"], self.beta)
        dpo = out.losses.mean()
        sft = -(policy_chosen / chosen_tokens.clamp(min=1)).mean()
        loss = dpo + self.sft_weight * sft if self.sft_weight else dpo
        margin = (out.chosen_rewards - out.rejected_rewards).detach()
        steps = batch["is_step_pair"]
        metrics = {
            "loss": float(loss.detach()),
            "dpo_loss": float(dpo.detach()),
            "sft_loss": float(sft.detach()),
            "reward_margin": float(margin.mean()),
            "reward_acc": float((margin > 0).float().mean()),
            "chosen_reward": float(out.chosen_rewards.detach().mean()),
            "rejected_reward": float(out.rejected_rewards.detach().mean()),
            "chosen_logp": float(policy_chosen.detach().mean()),
            "rejected_logp": float(policy_rejected.detach().mean()),
            "label_mean": float(batch["pair_labels"].mean()),
            "step_pairs": float(steps.sum()),
            "path_pairs": float((~steps).sum()),
        }
        return loss, metrics
