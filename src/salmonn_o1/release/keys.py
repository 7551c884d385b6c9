"""Tensor names of the released checkpoint <-> ours, declared once as a table.

Each `Rule` maps a released name prefix (or exact name) to ours; `{n}` stands
for a layer number. The first rule that matches wins, so specific rules come
before general ones. A rule whose `native` is None names a released tensor we
deliberately do not load (and says why), so every released tensor is either
mapped or knowingly dropped; anything else is reported by name. The same
table read right to left writes the released layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from salmonn_o1.errors import CheckpointError


@dataclass(frozen=True)
class Rule:
    release: str  # a prefix when it ends with ".", else an exact name; "{n}" = layer number
    native: str | None  # None: the released tensor is dropped on purpose
    why: str = ""

    @cached_property
    def release_pattern(self) -> re.Pattern:
        return _compile(self.release)

    @cached_property
    def native_pattern(self) -> re.Pattern | None:
        return None if self.native is None else _compile(self.native)


def _compile(template: str) -> re.Pattern:
    body = re.escape(template).replace(re.escape("{n}"), r"(?P<n>\d+)")
    return re.compile("^" + body + ("" if template.endswith(".") else "$"))


def _apply(pattern: re.Pattern, target: str, key: str) -> str | None:
    match = pattern.match(key)
    if match is None:
        return None
    head = target.replace("{n}", match.group("n")) if "{n}" in target else target
    return head + key[match.end():]


# The main released checkpoint.
RELEASE_RULES: tuple[Rule, ...] = (
    # Qwen2 language model
    Rule("model.embed_tokens.", "language_model.model.embed_tokens."),
    Rule("model.layers.{n}.self_attn.rotary_emb.inv_freq", None, "rotary table, recomputed"),
    Rule("model.layers.", "language_model.model.layers."),
    Rule("model.norm.", "language_model.model.norm."),
    Rule("model.rotary_emb.inv_freq", None, "rotary table, recomputed"),
    Rule("lm_head.", "language_model.lm_head."),
    # Visual branch: SigLIP (last layer already removed by the release), projector, newline
    Rule("model.vision_tower.vision_tower.vision_model.head.", None, "SigLIP pooling head, unused"),
    Rule("model.vision_tower.vision_tower.vision_model.", "vision_tower."),
    Rule("model.mm_projector.", "mm_projector."),
    Rule("model.image_newline", "image_newline"),
    # Audio branch: Whisper encoder, LayerNorm, window Q-Former (BERT names -> Blip2QFormerModel), projections
    Rule("speech_encoder.", "audio_encoder."),
    Rule("ln_speech.", "audio_qformer.norm."),
    Rule("speech_query_tokens", "audio_qformer.query_tokens"),
    Rule("speech_Qformer.bert.embeddings.LayerNorm.", "audio_qformer.qformer.layernorm."),
    Rule("speech_Qformer.bert.embeddings.", None, "BERT word/position embeddings, unused by a Q-Former"),
    Rule("speech_Qformer.bert.encoder.layer.{n}.attention.self.",
         "audio_qformer.qformer.encoder.layer.{n}.attention.attention."),
    Rule("speech_Qformer.bert.encoder.layer.{n}.crossattention.self.",
         "audio_qformer.qformer.encoder.layer.{n}.crossattention.attention."),
    Rule("speech_Qformer.bert.encoder.layer.{n}.intermediate.", None, "BERT text FFN, unused by the queries"),
    Rule("speech_Qformer.bert.encoder.layer.{n}.output.", None, "BERT text FFN, unused by the queries"),
    Rule("speech_Qformer.bert.encoder.layer.", "audio_qformer.qformer.encoder.layer."),
    Rule("speech_Qformer.cls.", None, "BERT MLM head, unused"),
    Rule("speech_llama_proj.", "audio_projector."),
    Rule("final_linear.", "audio_final_mlp."),
)

# google/siglip-so400m-patch14-384 (a whole SiglipModel, or a SiglipVisionModel saved flat).
SIGLIP_RULES: tuple[Rule, ...] = (
    Rule("vision_model.head.", None, "SigLIP pooling head, unused"),
    Rule("vision_model.", "vision_tower."),
    Rule("text_model.", None, "SigLIP text tower"),
    Rule("logit_scale", None, "SigLIP contrastive scale"),
    Rule("logit_bias", None, "SigLIP contrastive bias"),
    Rule("head.", None, "SigLIP pooling head, unused"),
    Rule("embeddings.", "vision_tower.embeddings."),
    Rule("encoder.", "vision_tower.encoder."),
    Rule("post_layernorm.", "vision_tower.post_layernorm."),
)

# openai/whisper-large-v3 (WhisperForConditionalGeneration or WhisperModel): the encoder only.
WHISPER_RULES: tuple[Rule, ...] = (
    Rule("model.encoder.", "audio_encoder."),
    Rule("model.decoder.", None, "Whisper decoder"),
    Rule("proj_out.", None, "Whisper decoder output"),
    Rule("encoder.", "audio_encoder."),
    Rule("decoder.", None, "Whisper decoder"),
)

# Wrappers training checkpoints put around the names: DeepSpeed/DDP, then PEFT.
WRAPPER_PREFIXES = ("module.", "base_model.model.")
_LORA = re.compile(r"^(?P<base>.+)\.lora_(?P<part>[AB])(?:\.[^.]+)?\.weight$")
_VISION_LAYER = re.compile(r"^vision_tower\.encoder\.layers\.(\d+)\.")


def strip_wrappers(key: str) -> str:
    """`module.base_model.model.x.q_proj.base_layer.weight` -> `x.q_proj.weight`."""
    for prefix in WRAPPER_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.replace(".base_layer.", ".")


def split_lora(key: str) -> tuple[str, str] | None:
    """`x.q_proj.lora_A.default.weight` -> (`x.q_proj.weight`, "A"); None for other tensors."""
    match = _LORA.match(key)
    return None if match is None else (match.group("base") + ".weight", match.group("part"))


def to_native(key: str, rules: Iterable[Rule] = RELEASE_RULES) -> tuple[str | None, Rule | None]:
    """(our name, the rule) for a released name; (None, rule) if dropped; (None, None) if unknown."""
    for rule in rules:
        if rule.release_pattern.match(key) is None:
            continue
        if rule.native is None:
            return None, rule
        return _apply(rule.release_pattern, rule.native, key), rule
    return None, None


def to_release(key: str, rules: Iterable[Rule] = RELEASE_RULES) -> str | None:
    """The released name of one of our tensors; None if the release has no such tensor."""
    for rule in rules:
        if rule.native_pattern is not None and rule.native_pattern.match(key):
            return _apply(rule.native_pattern, rule.release, key)
    return None


@dataclass
class KeyMapping:
    """How each source name fares: mapped to ours, dropped on purpose, or not understood."""

    mapped: dict[str, str] = field(default_factory=dict)  # source name -> our name
    dropped: dict[str, str] = field(default_factory=dict)  # source name -> why
    unmapped: list[str] = field(default_factory=list)
    lora: dict[str, dict[str, str]] = field(default_factory=dict)  # base source name -> {"A": key, "B": key}

    def problems(self) -> list[str]:
        out = []
        if self.unmapped:
            out.append("no rule for: " + ", ".join(sorted(self.unmapped)))
        lonely = sorted(base for base, parts in self.lora.items() if set(parts) != {"A", "B"})
        if lonely:
            out.append("LoRA adapters without their A/B partner: " + ", ".join(lonely))
        return out


def map_keys(
    keys: Iterable[str], rules: Iterable[Rule] = RELEASE_RULES, vision_layers_used: int | None = None
) -> KeyMapping:
    """Classify every source name. `vision_layers_used`: SigLIP layers past it are dropped
    (the release removes the last layer; a full SigLIP checkpoint still has it)."""
    rules = tuple(rules)
    result = KeyMapping()
    owner: dict[str, str] = {}
    for key in keys:
        name = strip_wrappers(key)
        lora = split_lora(name)
        if lora is not None:
            base, part = lora
            result.lora.setdefault(base, {})[part] = key
            continue
        native, rule = to_native(name, rules)
        if native is None:
            if rule is None:
                result.unmapped.append(key)
            else:
                result.dropped[key] = rule.why
            continue
        layer = _VISION_LAYER.match(native)
        if layer and vision_layers_used is not None and int(layer.group(1)) >= vision_layers_used:
            result.dropped[key] = f"SigLIP layer past the {vision_layers_used} the features use"
            continue
        if native in owner:
            raise CheckpointError(f"{owner[native]} and {key} both name {native}")
        owner[native] = key
        result.mapped[key] = native
    return result


def release_to_native_state_dict(
    state_dict: Mapping[str, object], rules: Iterable[Rule] = RELEASE_RULES, strict: bool = True,
    vision_layers_used: int | None = None,
) -> dict[str, object]:
    """A whole released state dict under our names. Unknown names raise (strict) by name.

    LoRA adapters are not merged here (see `salmonn_o1.release.loading`), so
    they count as problems too.
    """
    mapping = map_keys(state_dict, rules, vision_layers_used)
    problems = mapping.problems()
    if mapping.lora:
        problems.append("LoRA adapters to merge first: " + ", ".join(sorted(mapping.lora)))
    if strict and problems:
        raise CheckpointError("released state dict: " + "; ".join(problems))
    return {native: state_dict[key] for key, native in mapping.mapped.items()}


def native_to_release_state_dict(
    state_dict: Mapping[str, object], rules: Iterable[Rule] = RELEASE_RULES
) -> dict[str, object]:
    """Our state dict under the released names; a tensor the release has no name for raises by name."""
    out, unknown = {}, []
    for key, value in state_dict.items():
        release = to_release(key, rules)
        if release is None:
            unknown.append(key)
        else:
            out[release] = value
    if unknown:
        raise CheckpointError(
            "the released layout has no name for: " + ", ".join(sorted(unknown))
            + " (time tokens have no released equivalent)"
        )
    return out
