"""Perception pretraining of the miniature model's encoders on AVR-Synth labels.

The released model starts from pretrained SigLIP and Whisper; a model built at
a few million parameters has no such encoders, and learning perception through
the LLM's next-token loss alone was measured not to happen in a CPU budget
(docs/mini-model.md: the media were ignored). This stage gives the encoders
what pretraining gives the real ones, cheaply and from the generator's own
ground truth: per frame, the colour, shape and position of the shape on
screen; per 0.2 s audio window (the Q-Former's output token), the sound
playing. Small linear heads read the exact features the LLM will see (pooled
vision grid, Q-Former windows); they are thrown away afterwards and the
encoders are frozen for SFT, as in the paper.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from salmonn_o1.data.synthetic.dataset import SynthSample, generate_item, render_media
from salmonn_o1.data.synthetic.timeline import COLOURS, SHAPES, SOUNDS, scene_at
from salmonn_o1.model.modeling import SalmonnO1ForConditionalGeneration
from salmonn_o1.model.vision import pool_grid, tower_features
from salmonn_o1.processor import SalmonnO1Processor

COLOUR_NAMES = tuple(COLOURS)
SOUND_NAMES = tuple(SOUNDS)
IGNORE = -100


@dataclass
class PerceptionTargets:
    """Labels of one clip; class 0 is "nothing" (no shape on screen, silence)."""

    colour: torch.Tensor  # (F,) long
    shape: torch.Tensor  # (F,) long
    position: torch.Tensor  # (F, 2) float, centre in 0..1 (0.5 when nothing is shown)
    sound: torch.Tensor  # (windows,) long, IGNORE past the clip's end


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
    sound = torch.full((windows,), IGNORE, dtype=torch.long)
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
    targets: PerceptionTargets  # concatenated over clips


def perception_batch(processor: SalmonnO1Processor, split: str, indices: list[int]) -> PerceptionBatch:
    """Rendered clips (no mp4) featurised by the processor, as SFT sees them, with their labels."""
    config = processor.config
    pixels, features, parts = [], [], []
    for index in indices:
        sample = generate_item(split, index)
        media = processor.media_features(render_media(sample, fps=config.frames_per_second, size=config.image_size))
        pixels.append(media.pixel_values)
        features.append(media.input_features)
        windows = config.audio_tokens_per_chunk_per_query * media.num_chunks
        parts.append(perception_targets(sample, media.frame_times.numpy(), windows, config.audio_window_seconds))
    targets = PerceptionTargets(*(torch.cat([getattr(p, f) for p in parts])
                                  for f in ("colour", "shape", "position", "sound")))
    return PerceptionBatch(torch.cat(pixels), torch.cat(features), targets)


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
        "sound": ce(outputs["sound"], targets.sound, ignore_index=IGNORE),
        "position": (nn.functional.l1_loss(outputs["position"][shown], targets.position[shown])
                     if shown.any() else outputs["position"].sum() * 0),
    }
    valid = targets.sound != IGNORE
    metrics = {
        "colour_acc": (outputs["colour"].argmax(-1) == targets.colour).float().mean().item(),
        "shape_acc": (outputs["shape"].argmax(-1) == targets.shape).float().mean().item(),
        "sound_acc": (outputs["sound"].argmax(-1)[valid] == targets.sound[valid]).float().mean().item(),
        "position_mae": losses["position"].item(),
    }
    return losses["colour"] + losses["shape"] + losses["sound"] + 4.0 * losses["position"], metrics


@dataclass
class PerceptionRun:
    steps: int = 400
    batch_size: int = 8
    lr: float = 1e-3
    first_index: int = 700_000  # clips apart from the SFT ones (train split)
    seed: int = 0
    log_every: int = 20


def pretrain_perception(model: SalmonnO1ForConditionalGeneration, processor: SalmonnO1Processor,
                        run: PerceptionRun, log_path: str | Path | None = None) -> tuple[PerceptionHeads, list[dict]]:
    """Train the vision tower and the audio encoder + Q-Former on the perception labels (in place)."""
    torch.manual_seed(run.seed)
    heads = PerceptionHeads(model.config.vision_config.hidden_size, model.config.qformer_config.hidden_size)
    modules = [model.vision_tower, model.audio_encoder, model.audio_qformer, heads]
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=run.lr, weight_decay=0.01)
    warmup = max(1, run.steps // 10)

    def factor(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, run.steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    for m in modules:
        m.train()
    log: list[dict] = []
    log_file = open(log_path, "a") if log_path else None  # noqa: SIM115 - closed below
    try:
        bar = tqdm(range(run.steps), desc="perception")
        for step in bar:
            start = run.first_index + step * run.batch_size
            batch = perception_batch(processor, "train", list(range(start, start + run.batch_size)))
            loss, metrics = perception_loss(perception_outputs(model, heads, batch), batch.targets)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            record = {"step": step + 1, "loss": loss.item(), **metrics}
            bar.set_postfix(loss=f"{loss.item():.3f}", colour=f"{metrics['colour_acc']:.2f}",
                            sound=f"{metrics['sound_acc']:.2f}")
            if (step + 1) % run.log_every == 0 or step + 1 == run.steps:
                log.append(record)
                if log_file:
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
    finally:
        if log_file:
            log_file.close()
    model.eval()
    return heads, log


@torch.no_grad()
def evaluate_perception(model: SalmonnO1ForConditionalGeneration, processor: SalmonnO1Processor,
                        heads: PerceptionHeads, indices: list[int], split: str = "dev") -> dict:
    batch = perception_batch(processor, split, indices)
    _, metrics = perception_loss(perception_outputs(model, heads, batch), batch.targets)
    return metrics


def run_perception(recipe, resume: bool | str = False):
    """`salmonn-o1 train perception`: pretrain, save `out_dir/final` (model + processor), log metrics.

    Minutes long, so "resume" means: a finished run (its `final` exists) is not redone.
    """
    from salmonn_o1.checkpoints import load_model_and_processor, save_model_and_processor
    from salmonn_o1.errors import RecipeError
    from salmonn_o1.train.trainer import TrainResult, final_dir, finished

    known = {"first_index", "log_every", "dev_items"}
    unknown = sorted(set(recipe.stage_options) - known)
    if unknown:
        raise RecipeError(f"stage_options: unknown key(s) {unknown} for stage perception; known: {sorted(known)}")
    out_dir = Path(recipe.run.out_dir)
    final = final_dir(out_dir)
    if resume and finished(out_dir):
        return TrainResult(step=recipe.optim.max_steps, out_dir=out_dir, final_dir=final, skipped=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe.save(out_dir / "recipe.yaml")
    model, processor = load_model_and_processor(recipe.model.source, device="cpu", dtype="float32",
                                                seed=recipe.model.init_seed)
    options = recipe.stage_options
    run = PerceptionRun(steps=recipe.optim.max_steps, batch_size=recipe.optim.batch_size, lr=recipe.optim.lr,
                        first_index=int(options.get("first_index", PerceptionRun.first_index)),
                        seed=recipe.run.seed, log_every=int(options.get("log_every", PerceptionRun.log_every)))
    metrics_path = out_dir / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    heads, history = pretrain_perception(model, processor, run, log_path=metrics_path)
    dev = evaluate_perception(model, processor, heads, list(range(int(options.get("dev_items", 32)))))
    (out_dir / "dev_perception.json").write_text(json.dumps(dev, indent=2))
    print(f"perception on dev clips: {dev}")
    save_model_and_processor(model, processor, final)
    return TrainResult(step=run.steps, out_dir=out_dir, final_dir=final, skipped=0, history=history)
