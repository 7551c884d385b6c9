"""Perception pretraining of the miniature model's encoders on AVR-Synth labels.

The released model starts from pretrained SigLIP and Whisper; a model built at
a few million parameters has no such encoders, and learning perception through
the LLM's next-token loss alone was measured not to happen in a CPU budget
(salmonn_o1_mini/docs/notebook.md: the media were ignored). This stage gives the encoders
what pretraining gives the real ones, cheaply and from the generator's own
ground truth: per frame, the colour, shape and position of the shape on
screen; per 0.2 s audio window (the Q-Former's output token), the sound
playing. Small linear heads read the exact features the LLM will see (pooled
vision grid, Q-Former windows); they are thrown away afterwards and the
encoders are frozen for SFT, as in the paper.

`PerceptionObjective` is the component recipes/mini-perception.yaml names
(`objective:`); `salmonn-o1 train perception` runs it on the shared Trainer
(salmonn_o1.train.component_stage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.data.synthetic.dataset import SynthSample, generate_item, render_media
from salmonn_o1.data.synthetic.timeline import COLOURS, SHAPES, SOUNDS, scene_at
from salmonn_o1.model.modeling import SalmonnO1ForConditionalGeneration
from salmonn_o1.model.vision import pool_grid, tower_features
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.train.recipe import Recipe

COLOUR_NAMES = tuple(COLOURS)
SOUND_NAMES = tuple(SOUNDS)


@dataclass
class PerceptionTargets:
    """Labels of one clip; class 0 is "nothing" (no shape on screen, silence)."""

    colour: torch.Tensor  # (F,) long
    shape: torch.Tensor  # (F,) long
    position: torch.Tensor  # (F, 2) float, centre in 0..1 (0.5 when nothing is shown)
    sound: torch.Tensor  # (windows,) long, IGNORE_INDEX past the clip's end


def perception_targets(sample: SynthSample, frame_times: np.ndarray, windows: int, window_seconds: float
                       ) -> PerceptionTargets:
    """Frame and audio-window labels computed from the timeline (what the renderer drew)."""
    colour, shape, position = [], [], []
    for t in frame_times:
        scene = scene_at(sample.timeline, float(t))
        if scene is None:
            colour.append(0)
            shape.append(0)
            position.append((0.5, 0.5))
        else:
            colour.append(COLOUR_NAMES.index(scene.colour_at(float(t))) + 1)
            shape.append(SHAPES.index(scene.shape) + 1)
            position.append(scene.position(float(t)))
    sound = torch.full((windows,), IGNORE_INDEX, dtype=torch.long)
    for w in range(windows):
        centre = (w + 0.5) * window_seconds
        if centre >= sample.timeline.duration:
            break
        playing = [s.kind for s in sample.timeline.sounds if s.start <= centre < s.end]
        sound[w] = SOUND_NAMES.index(playing[0]) + 1 if playing else 0
    return PerceptionTargets(torch.tensor(colour), torch.tensor(shape), torch.tensor(position, dtype=torch.float32),
                             sound)


class PerceptionHeads(nn.Module):
    """Linear read-outs of the pooled vision grid (per frame) and the Q-Former windows."""

    def __init__(self, vision_dim: int, audio_dim: int):
        super().__init__()
        self.colour = nn.Linear(vision_dim, len(COLOUR_NAMES) + 1)
        self.shape = nn.Linear(vision_dim, len(SHAPES) + 1)
        self.position = nn.Linear(vision_dim, 2)
        self.sound = nn.Linear(audio_dim, len(SOUND_NAMES) + 1)


@dataclass
class PerceptionBatch:
    pixel_values: torch.Tensor  # (sum F, 3, S, S)
    input_features: torch.Tensor  # (sum C, mel, 3000)
    targets: PerceptionTargets | None  # concatenated over clips (None: outputs only)


def perception_clip(processor: SalmonnO1Processor, split: str, index: int) -> PerceptionBatch:
    """One rendered clip (no mp4) featurised by the processor, as SFT sees it, with its labels."""
    config = processor.config
    sample = generate_item(split, index)
    media = processor.media_features(render_media(sample, fps=config.frames_per_second, size=config.image_size))
    windows = config.audio_tokens_per_chunk_per_query * media.num_chunks
    targets = perception_targets(sample, media.frame_times.numpy(), windows, config.audio_window_seconds)
    return PerceptionBatch(media.pixel_values, media.input_features, targets)


def concatenate(clips: list[PerceptionBatch]) -> PerceptionBatch:
    targets = PerceptionTargets(*(torch.cat([getattr(c.targets, f) for c in clips])
                                  for f in ("colour", "shape", "position", "sound")))
    return PerceptionBatch(torch.cat([c.pixel_values for c in clips]), torch.cat([c.input_features for c in clips]),
                           targets)


def perception_batch(processor: SalmonnO1Processor, split: str, indices: list[int]) -> PerceptionBatch:
    """Clips `indices` of `split`, concatenated."""
    return concatenate([perception_clip(processor, split, index) for index in indices])


def perception_outputs(model: SalmonnO1ForConditionalGeneration, heads: PerceptionHeads, batch: PerceptionBatch
                       ) -> dict[str, torch.Tensor]:
    """Head logits from the features the LLM's projectors read."""
    config = model.config
    features = tower_features(model.vision_tower, batch.pixel_values)
    grid = pool_grid(features, config.patch_grid, config.spatial_pool_stride, config.spatial_pool_mode)
    frame_vector = grid.flatten(1, 2).mean(1)  # (F, C): every pooled token shares the frame's content
    states = model.audio_encoder(batch.input_features).last_hidden_state
    windows = model.audio_qformer(states).flatten(0, 1)  # (sum windows, Dq)
    return {"colour": heads.colour(frame_vector), "shape": heads.shape(frame_vector),
            "position": heads.position(frame_vector), "sound": heads.sound(windows)}


def perception_loss(outputs: dict[str, torch.Tensor], targets: PerceptionTargets) -> tuple[torch.Tensor, dict]:
    """Sum of the four losses, and per-head accuracies (position: mean absolute error)."""
    ce = nn.functional.cross_entropy
    shown = targets.colour > 0
    losses = {
        "colour": ce(outputs["colour"], targets.colour),
        "shape": ce(outputs["shape"], targets.shape),
        "sound": ce(outputs["sound"], targets.sound, ignore_index=IGNORE_INDEX),
        "position": (nn.functional.l1_loss(outputs["position"][shown], targets.position[shown])
                     if shown.any() else outputs["position"].sum() * 0),
    }
    valid = targets.sound != IGNORE_INDEX
    metrics = {
        "colour_acc": (outputs["colour"].argmax(-1) == targets.colour).float().mean().item(),
        "shape_acc": (outputs["shape"].argmax(-1) == targets.shape).float().mean().item(),
        "sound_acc": (outputs["sound"].argmax(-1)[valid] == targets.sound[valid]).float().mean().item(),
        "position_mae": losses["position"].item(),
    }
    return losses["colour"] + losses["shape"] + losses["sound"] + 4.0 * losses["position"], metrics


class PerceptionModel(nn.Module):
    """What perception pretraining optimises: the model's encoders and the read-out heads.

    One module, so accelerate places and (across processes) synchronises the heads with the
    encoders; `save_pretrained` saves the audio-visual model alone (checkpoints and the final
    model load in the pipeline; the heads are thrown away).
    """

    def __init__(self, model: SalmonnO1ForConditionalGeneration, heads: PerceptionHeads):
        super().__init__()
        self.model = model
        self.heads = heads
        # Trained as the first version of this stage trained them: the encoders, the audio
        # Q-Former and the heads, all of their parameters (Whisper's position table too, which
        # `set_trainable` keeps fixed elsewhere); everything else stays as loaded.
        model.requires_grad_(False)
        for module in (model.vision_tower, model.audio_encoder, model.audio_qformer, heads):
            module.requires_grad_(True)

    def forward(self, pixel_values: torch.Tensor, input_features: torch.Tensor) -> dict[str, torch.Tensor]:
        return perception_outputs(self.model, self.heads, PerceptionBatch(pixel_values, input_features, None))

    def save_pretrained(self, path: str | Path, **kwargs: Any) -> None:
        self.model.save_pretrained(path, **kwargs)


class PerceptionClips(Dataset):
    """Clip `first_index + position` of a split, one per example, in order."""

    def __init__(self, processor: SalmonnO1Processor, count: int, first_index: int, split: str = "train"):
        self.processor, self.count, self.first_index, self.split = processor, count, first_index, split

    def __len__(self) -> int:
        return self.count

    def describe(self, position: int) -> str:
        return f"{self.split}:{self.first_index + position}"

    def __getitem__(self, position: int) -> PerceptionBatch:
        return perception_clip(self.processor, self.split, self.first_index + position)


@dataclass
class PerceptionObjective:
    """Perception pretraining as a stage objective (salmonn_o1.train.component_stage.StageObjective).

    The schedule is the recipe's `optim`: recipes/mini-perception.yaml sets what the stage's
    first, separate loop hard-coded (AdamW, weight decay 0.01, a tenth of the steps of linear
    warm-up, then cosine to zero, gradients clipped at 1). Clip `first_index + k` is example k,
    taken in order; `dev_items` dev clips are scored after the last step (dev_perception.json).
    """

    first_index: int = 700_000  # clips apart from the SFT ones (train split)
    dev_items: int = 32
    name: str = "perception"

    def prepare(self, recipe: Recipe, model: SalmonnO1ForConditionalGeneration, processor: SalmonnO1Processor
                ) -> tuple[PerceptionModel, PerceptionClips]:
        torch.manual_seed(recipe.run.seed)  # the heads' initialisation
        heads = PerceptionHeads(model.config.vision_config.hidden_size, model.config.qformer_config.hidden_size)
        optim = recipe.optim
        clips = PerceptionClips(processor, optim.max_steps * optim.batch_size * optim.grad_accum, self.first_index)
        return PerceptionModel(model, heads), clips

    def collate(self, examples: list[PerceptionBatch]) -> dict[str, Any] | None:
        if not examples:
            return None
        batch = concatenate(examples)
        targets = batch.targets
        return {"pixel_values": batch.pixel_values, "input_features": batch.input_features,
                "targets": {"colour": targets.colour, "shape": targets.shape, "position": targets.position,
                            "sound": targets.sound}}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        outputs = model(batch["pixel_values"], batch["input_features"])
        loss, metrics = perception_loss(outputs, PerceptionTargets(**batch["targets"]))
        return loss, {"loss": loss.item(), **metrics}

    def finish(self, trained: PerceptionModel, processor: SalmonnO1Processor, out_dir: Path) -> None:
        trained.eval()
        dev = evaluate_perception(trained.model, processor, trained.heads, list(range(self.dev_items)))
        (Path(out_dir) / "dev_perception.json").write_text(json.dumps(dev, indent=2))
        print(f"perception on dev clips: {dev}")


@torch.no_grad()
def evaluate_perception(model: SalmonnO1ForConditionalGeneration, processor: SalmonnO1Processor,
                        heads: PerceptionHeads, indices: list[int], split: str = "dev") -> dict:
    batch = perception_batch(processor, split, indices)
    _, metrics = perception_loss(perception_outputs(model, heads, batch), batch.targets)
    return metrics


def run_perception(recipe: Recipe | str | Path, overrides: list[str] | None = None, resume: bool | str = False,
                   stop_at_step: int | None = None):
    """From Python, what `salmonn-o1 train perception --config recipes/mini-perception.yaml` runs."""
    from salmonn_o1.train.component_stage import run_component_stage

    return run_component_stage(recipe, overrides, resume=resume, stop_at_step=stop_at_step)
