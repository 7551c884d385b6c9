"""salmonn-o1: reasoning-enhanced audio-visual LLMs (video-SALMONN-o1, re-implemented).

The public API, importable from the package root:

    import salmonn_o1

    pipe = salmonn_o1.load()  # the shipped miniature model
    result = pipe.ask("clip.mp4", "What plays first?", ["the drum", "the bell"])
    print(result.steps, result.answer)

`SalmonnO1Config`, `SalmonnO1ForConditionalGeneration`, `SalmonnO1Processor` and
`SalmonnO1Pipeline` are the config, the model, the processor and the two-turn
reasoning pipeline. They are imported on first use (PEP 562), so
`import salmonn_o1` (and `salmonn-o1 --help`) does not import torch.

Importing the package also registers these classes with transformers' Auto
classes (`AutoConfig`, `AutoModelForMultimodalLM`, `AutoProcessor`), on their
first use, so `import salmonn_o1` still imports no transformers (`salmonn_o1.auto`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "SalmonnO1Config",
    "SalmonnO1ForConditionalGeneration",
    "SalmonnO1Pipeline",
    "SalmonnO1Processor",
    "__version__",
    "load",
]

from salmonn_o1 import auto as _auto

_auto.install()

if TYPE_CHECKING:
    from salmonn_o1.config import SalmonnO1Config
    from salmonn_o1.inference import SalmonnO1Pipeline
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.processor import SalmonnO1Processor


def load(source: str | None = None, device: str = "auto", dtype: str = "auto", **kwargs: Any) -> SalmonnO1Pipeline:
    """A ready pipeline: `load().ask(video, question, options)`.

    Returns a `SalmonnO1Pipeline` rather than a bare model (whisper's `load_model`
    returns the model because its model carries `transcribe`; ours needs the processor
    and the two-turn protocol beside it). `pipe.model` and `pipe.processor` are the
    `SalmonnO1ForConditionalGeneration` and `SalmonnO1Processor`, for training or for
    decoding of your own.

    source: None for the shipped miniature model; a checkpoint directory in our layout
    or in the released video-SALMONN-o1 layout (a hub id too); or a preset name
    ("tiny", "mini": randomly initialised). device: "auto" (CUDA when available),
    "cpu", "cuda:0"... dtype: "auto" (bfloat16 on a CUDA device that supports it,
    float32 elsewhere), "float32", "bfloat16", "float16". `kwargs` go to the
    checkpoint loader (strict, device_map; siglip_path, whisper_path for the release).
    """
    from salmonn_o1.inference import SalmonnO1Pipeline

    return SalmonnO1Pipeline.from_pretrained(source, device=device, dtype=dtype, **kwargs)


def __getattr__(name: str) -> Any:
    # Each public class is imported when first asked for, then cached in the module.
    if name == "SalmonnO1Config":
        from salmonn_o1.config import SalmonnO1Config as value
    elif name == "SalmonnO1ForConditionalGeneration":
        from salmonn_o1.model import SalmonnO1ForConditionalGeneration as value
    elif name == "SalmonnO1Processor":
        from salmonn_o1.processor import SalmonnO1Processor as value
    elif name == "SalmonnO1Pipeline":
        from salmonn_o1.inference import SalmonnO1Pipeline as value
    else:
        raise AttributeError(f"module 'salmonn_o1' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
