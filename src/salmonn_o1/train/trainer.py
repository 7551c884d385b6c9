"""The training engine shared by SFT and pDPO, on `accelerate`.

accelerate does the distribution (DDP, DeepSpeed, FSDP through its config
files), mixed precision, gradient accumulation and the checkpoint state
(model, optimizer, scheduler, RNG); this module adds what a long run needs
around it: a planned data order that resumes exactly, skipping and counting
bad examples, metrics, periodic dev evaluation and a bounded set of
checkpoints that each load directly in the inference pipeline.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from salmonn_o1.errors import (
    CheckpointError,
    DataError,
    MediaError,
    RecipeError,
    SkipExample,
    ensure_writable_dir,
    writing,
)
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.train.batching import PlannedBatches
from salmonn_o1.train.model_setup import export_model
from salmonn_o1.train.objective import Objective
from salmonn_o1.train.recipe import SCHEDULES, Recipe

CHECKPOINT_PREFIX = "checkpoint-"
# Besides the examples the dataset marks (`SkipExample`), unusable input is skipped and counted
# (a missing or corrupt media file, a malformed record). Anything else is a bug and stops the run.
UNUSABLE_INPUT = (MediaError, DataError)


@dataclass
class Skipped:
    """A bad example: which one and why, logged and counted instead of crashing the run."""

    name: str
    reason: str


class GuardedExamples(Dataset):
    """Wraps a dataset so a bad example becomes a `Skipped` record (in the worker, not the loop)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, position: int):
        name = self.dataset.describe(position) if hasattr(self.dataset, "describe") else str(position)
        try:
            return name, self.dataset[position]
        except SkipExample as exc:
            return name, Skipped(name, str(exc))
        except UNUSABLE_INPUT as exc:
            return name, Skipped(name, f"{type(exc).__name__}: {exc}")


class GuardedCollate:
    """Splits good from skipped examples, then lets the objective collate the good ones."""

    def __init__(self, objective: Objective):
        self.objective = objective

    def __call__(self, named: list[tuple[str, Any]]) -> dict[str, Any]:
        good = [example for _, example in named if not isinstance(example, Skipped)]
        skipped = [example for _, example in named if isinstance(example, Skipped)]
        return {"batch": self.objective.collate(good) if good else None,
                "names": [name for name, _ in named], "skipped": [(s.name, s.reason) for s in skipped]}


def lr_lambda(recipe: Recipe) -> Callable[[int], float]:
    optim = recipe.optim
    if optim.schedule not in SCHEDULES:
        raise RecipeError(f"optim.schedule: {optim.schedule!r} is not one of {', '.join(SCHEDULES)}")

    def factor(step: int) -> float:
        if step < optim.warmup_steps:
            return (step + 1) / optim.warmup_steps
        if optim.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - optim.warmup_steps) / max(1, optim.max_steps - optim.warmup_steps))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if optim.schedule == "cosine" else 1 - progress
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * shape

    return factor


@dataclass
class TrainResult:
    step: int
    out_dir: Path
    final_dir: Path | None
    skipped: int
    history: list[dict] = field(default_factory=list)


def _first_fetch_keeps_rng(batches):
    """Iterate `batches`, restoring the RNG after the first fetch.

    Starting a DataLoader iterator draws a seed from the global RNG. A fresh run
    does that before step 1; a resumed run would do it after the restored RNG
    state, shifting every later dropout mask. Undoing the draw makes resume exact.
    """
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    iterator = iter(batches)
    first = next(iterator, None)
    torch.set_rng_state(states[0])
    random.setstate(states[1])
    np.random.set_state(states[2])
    if states[3] is not None:
        torch.cuda.set_rng_state_all(states[3])
    if first is not None:
        yield first
        yield from iterator


def final_dir(out_dir: Path) -> Path:
    """Where a run's finished model goes; its config.json marks the run as finished."""
    return out_dir / "final"


def finished(out_dir: Path) -> bool:
    return (final_dir(out_dir) / "config.json").exists()


def step_checkpoints(out_dir: Path) -> list[Path]:
    """The run's `checkpoint-N` folders by step; other `checkpoint-*` names (a user's `checkpoint-best`
    copy, say) are not the trainer's and are neither resumed from nor pruned."""
    numbered = [p for p in out_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(numbered, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def latest_checkpoint(out_dir: Path) -> Path | None:
    complete = [c for c in step_checkpoints(out_dir) if (c / "trainer_state.json").exists()]
    return complete[-1] if complete else None


def check_state_files(state_dir: Path) -> None:
    """Name a truncated `optimizer.bin` / `scheduler.bin` before accelerate fails on it without a name.

    `torch.save` writes zip archives, whose central directory sits at the end of the file, so a cut
    file is cheap to tell from a whole one.
    """
    if not state_dir.is_dir():
        raise CheckpointError(f"{state_dir}: missing; the checkpoint is incomplete (resume from an earlier one)")
    for path in sorted([*state_dir.glob("*.bin"), *state_dir.glob("*.pkl")]):
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path}: truncated or damaged (not a complete torch file); resume from an "
                                  "earlier checkpoint-N or delete this one")


def read_trainer_state(checkpoint: Path) -> dict[str, int]:
    """`trainer_state.json`'s step and skipped count; a damaged file is a CheckpointError naming it."""
    path = checkpoint / "trainer_state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable ({error}); resume from an earlier checkpoint-N or "
                              "delete this one") from None
    if not (isinstance(state, dict) and all(isinstance(state.get(k), int) and state[k] >= 0
                                            for k in ("step", "skipped"))):
        raise CheckpointError(f"{path}: expected {{\"step\": N, \"skipped\": M}} with counts >= 0, got "
                              f"{json.dumps(state)[:80]}; resume from an earlier checkpoint-N or delete this one")
    return state


class Trainer:
    """`Trainer(recipe, model, processor, dataset, objective).train()`; see module docstring."""

    def __init__(self, recipe: Recipe, model: nn.Module, processor: SalmonnO1Processor, dataset: Dataset,
                 objective: Objective, evaluate: Callable[[nn.Module], dict[str, float]] | None = None):
        self.recipe = recipe
        self.model = model
        self.processor = processor
        self.dataset = dataset
        self.objective = objective
        self.evaluate = evaluate
        self.out_dir = Path(recipe.run.out_dir)

    # ---- setup ----
    def _accelerator(self):
        from accelerate import Accelerator, DataLoaderConfiguration

        return Accelerator(
            gradient_accumulation_steps=self.recipe.optim.grad_accum,
            mixed_precision=self.recipe.run.precision,
            cpu=not torch.cuda.is_available(),
            dataloader_config=DataLoaderConfiguration(split_batches=True),
        )

    def _dataloader(self, num_processes: int) -> DataLoader:
        recipe = self.recipe
        if recipe.optim.batch_size % num_processes:
            raise RecipeError(f"optim.batch_size {recipe.optim.batch_size} must be a multiple of the "
                              f"{num_processes} processes (it is the global batch per micro-step)")
        length_of = getattr(self.dataset, "length_of", None) if recipe.data.length_grouping else None
        sampler = PlannedBatches(len(self.dataset), recipe.optim.batch_size, recipe.run.seed, length_of,
                                 recipe.data.group_factor)
        return DataLoader(GuardedExamples(self.dataset), batch_sampler=sampler,
                          collate_fn=GuardedCollate(self.objective), num_workers=recipe.data.num_workers)

    # ---- the loop ----
    def train(self, resume: bool | str | Path = False, stop_at_step: int | None = None) -> TrainResult:
        """Run to `optim.max_steps` (or `stop_at_step`), resuming from the latest (or a given) checkpoint."""
        from accelerate.utils import set_seed

        recipe = self.recipe
        accelerator = self._accelerator()
        set_seed(recipe.run.seed)
        dataloader = self._dataloader(accelerator.num_processes)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise RecipeError("nothing to train: model.train names no group with parameters and LoRA is off")
        optimizer = torch.optim.AdamW(params, lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay,
                                      betas=tuple(recipe.optim.betas))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(recipe))
        model, optimizer, dataloader, scheduler = accelerator.prepare(self.model, optimizer, dataloader, scheduler)

        step, skipped_total = 0, 0
        checkpoint = self._resume_point(resume)
        if checkpoint is not None:
            state = read_trainer_state(checkpoint)
            check_state_files(checkpoint / "state")
            try:
                accelerator.load_state(str(checkpoint / "state"))
            except Exception as error:  # noqa: BLE001 - torch/accelerate raise many types for a damaged file
                raise CheckpointError(
                    f"{checkpoint / 'state'}: cannot restore the training state ({type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else 'no detail'}); a file such as optimizer.bin "
                    "is truncated or damaged: resume from an earlier checkpoint-N or delete this one"
                ) from error
            step, skipped_total = state["step"], state["skipped"]
            self._load_objective_state(checkpoint)
            accelerator.print(f"resumed from {checkpoint} at step {step}")
        if accelerator.is_main_process:
            ensure_writable_dir(self.out_dir, "run.out_dir")
            recipe.save(self.out_dir / "recipe.yaml")
            self._trim_logs(step)
        accelerator.wait_for_everyone()
        batches = accelerator.skip_first_batches(dataloader, step * recipe.optim.grad_accum) if step else dataloader
        batches = _first_fetch_keeps_rng(batches) if checkpoint is not None else batches

        end = min(recipe.optim.max_steps, stop_at_step or recipe.optim.max_steps)
        bar = tqdm(total=end, initial=step, desc=f"train {self.objective.name}", unit="step",
                   disable=not accelerator.is_local_main_process, dynamic_ncols=True)
        writer = self._tensorboard() if accelerator.is_main_process else None
        history: list[dict] = []
        window: dict[str, list[float]] = {}
        tokens, names, started, micro = 0, [], time.perf_counter(), 0
        model.train()
        for packed in batches:
            if step >= end or self._objective_finished():  # a resumed run already done
                break
            batch, skipped = packed["batch"], packed["skipped"]
            names += packed["names"]
            for name, reason in skipped:
                self._log_skip(accelerator, step, name, reason)
            skipped_total += len(skipped)
            with accelerator.accumulate(model):
                if batch is None:  # every example bad: touch the parameters so DDP still syncs
                    loss = sum(p.sum() for p in params) * 0.0
                    metrics: dict[str, float] = {}
                else:
                    tokens += int(batch.get("num_tokens", 0))
                    loss, metrics = self.objective.loss(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and recipe.optim.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, recipe.optim.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            for key, value in metrics.items():
                window.setdefault(key, []).append(value)
            micro += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            record = self._record(accelerator, step, window, scheduler, tokens, started, end, skipped_total)
            record["examples"] = names
            history.append(record)
            window, tokens, names, started = {}, 0, [], time.perf_counter()
            bar.update(1)
            shown = ("loss", *getattr(self.objective, "progress_keys", ()), "lr", "tokens_per_s")
            bar.set_postfix({k: record[k] for k in shown if k in record})
            if accelerator.is_main_process:
                self._append(self.out_dir / "metrics.jsonl", record)
                if writer is not None:
                    for key, value in record.items():
                        if isinstance(value, (int, float)) and key != "step":
                            writer.add_scalar(f"train/{key}", value, step)
            if self.evaluate and recipe.run.eval_every and step % recipe.run.eval_every == 0:
                self._evaluate(accelerator, model, step)
            done = self._objective_finished()  # e.g. a generation budget spent
            if step % recipe.run.save_every == 0 or step == end or done:
                self._save(accelerator, model, step, skipped_total)
            started = time.perf_counter()  # evaluation and saving are not training throughput
            if done:
                break
        bar.close()
        if writer is not None:
            writer.close()
        final = None
        if step >= recipe.optim.max_steps or self._objective_finished():
            final = final_dir(self.out_dir)
            if accelerator.is_main_process:
                with writing(final):
                    export_model(accelerator.unwrap_model(model), self.processor, final)
                    recipe.save(final / "recipe.yaml")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TrainResult(step, self.out_dir, final, skipped_total, history)

    # ---- pieces ----
    def _tensorboard(self):
        """A SummaryWriter under out_dir/tensorboard when the tensorboard package is installed."""
        if not self.recipe.run.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def _resume_point(self, resume: bool | str | Path) -> Path | None:
        if resume is False or resume is None:
            return None
        if resume is True or resume == "auto":
            return latest_checkpoint(self.out_dir)
        path = Path(resume)
        if not (path / "trainer_state.json").exists():
            raise CheckpointError(f"{path}: not a training checkpoint (no trainer_state.json)")
        return path

    def _record(self, accelerator, step, window, scheduler, tokens, started, end, skipped_total) -> dict:
        elapsed = max(time.perf_counter() - started, 1e-9)
        record: dict[str, Any] = {"step": step}
        for key, values in window.items():
            local = torch.tensor(sum(values) / len(values), device=accelerator.device)
            record[key] = round(float(accelerator.reduce(local, "mean")), 6)
        total_tokens = float(accelerator.reduce(torch.tensor(float(tokens), device=accelerator.device), "sum"))
        record.update(lr=scheduler.get_last_lr()[0], tokens_per_s=round(total_tokens / elapsed, 1),
                      step_s=round(elapsed, 3), eta_s=round(elapsed * (end - step), 1), skipped=skipped_total)
        return record

    def _evaluate(self, accelerator, model, step: int) -> None:
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            unwrapped.eval()
            result = {"step": step, **self.evaluate(unwrapped)}
            unwrapped.train()
            self._append(self.out_dir / "eval.jsonl", result)
            accelerator.print(f"eval @ {step}: {result}")
        accelerator.wait_for_everyone()

    def _save(self, accelerator, model, step: int, skipped: int) -> None:
        checkpoint = self.out_dir / f"{CHECKPOINT_PREFIX}{step}"
        with writing(checkpoint):  # a full disk mid-run: one line; trainer_state.json is written last
            accelerator.save_state(str(checkpoint / "state"))
            if accelerator.is_main_process:
                export_model(accelerator.unwrap_model(model), self.processor, checkpoint / "model")
                self.recipe.save(checkpoint / "recipe.yaml")
                if hasattr(self.objective, "state_dict"):  # an objective's own counters (GRPO's tokens spent)
                    (checkpoint / "objective_state.json").write_text(json.dumps(self.objective.state_dict()))
                (checkpoint / "trainer_state.json").write_text(json.dumps({"step": step, "skipped": skipped}))
        if accelerator.is_main_process:
            self._prune()
        accelerator.wait_for_everyone()

    def _objective_finished(self) -> bool:
        """The objective's own end of the run (optional `finished`: GRPO's spent generation budget)."""
        return bool(getattr(self.objective, "finished", False))

    def _load_objective_state(self, checkpoint: Path) -> None:
        path = checkpoint / "objective_state.json"
        if hasattr(self.objective, "load_state_dict") and path.exists():
            try:
                self.objective.load_state_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
                raise CheckpointError(f"{path}: unreadable ({error}); resume from an earlier checkpoint-N or "
                                      "delete this one") from None

    def _prune(self) -> None:
        keep = max(1, self.recipe.run.keep_last)
        checkpoints = step_checkpoints(self.out_dir)
        for old in checkpoints[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def _trim_logs(self, step: int) -> None:
        """Drop log lines past the resumed step, so the logs read as one run."""
        for name in ("metrics.jsonl", "eval.jsonl"):
            path = self.out_dir / name
            if not path.exists():
                continue
            kept = []
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue
            path.write_text("".join(f"{line}\n" for line in kept))

    def _log_skip(self, accelerator, step: int, name: str, reason: str) -> None:
        self._append(self.out_dir / f"skipped.rank{accelerator.process_index}.jsonl",
                     {"step": step, "example": name, "reason": reason})

    @staticmethod
    def _append(path: Path, record: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
