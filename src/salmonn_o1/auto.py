"""salmonn-o1 in transformers' Auto classes, while `import salmonn_o1` imports neither torch nor transformers.

transformers keeps each Auto mapping as a table of names (model type -> class
name) and resolves a name on first lookup by importing
`transformers.models.<model type>`. `install()`, run by `import salmonn_o1`,
adds our names to those tables as soon as the module holding a table has been
imported (at once, if it already is), and makes this module answer as
`transformers.models.salmonn_o1`; the classes themselves, and torch with them,
load on the first lookup, e.g. `AutoModelForMultimodalLM.from_pretrained(path)`.
The tables are edited after their module has run and without importing
anything, so the hook can never take part in one of transformers' own import
cycles (its config modules import the Auto modules half-way through).

The model goes in two tables: `AutoModelForMultimodalLM`, whose contract is
ours (text plus optional image, video or audio in, text out: Qwen2.5-Omni's
class, the one the "any-to-any" pipeline loads), and `AutoModelForImageTextToText`,
which transformers' own multimodal table extends and where video LLMs like
LLaVA-OneVision live, for code written against it. Not `AutoModel` (a base
model without the language-model head) nor `AutoModelForCausalLM` (text-only
inputs).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

MODEL_TYPE = "salmonn_o1"
CONFIG_CLASS = "SalmonnO1Config"
MODEL_CLASS = "SalmonnO1ForConditionalGeneration"
PROCESSOR_CLASS = "SalmonnO1Processor"
# The module transformers imports to resolve our names (`transformers.models.<model type>`).
ALIAS = f"transformers.models.{MODEL_TYPE}"

# transformers module -> (name table in it, our class name) pairs to add once it has run.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "transformers.models.auto.configuration_auto": (("CONFIG_MAPPING_NAMES", CONFIG_CLASS),),
    "transformers.models.auto.modeling_auto": (
        ("MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES", MODEL_CLASS),
        ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", MODEL_CLASS),
    ),
    "transformers.models.auto.processing_auto": (("PROCESSOR_MAPPING_NAMES", PROCESSOR_CLASS),),
}

__all__ = [CONFIG_CLASS, MODEL_CLASS, PROCESSOR_CLASS, "install"]


def __getattr__(name: str) -> Any:
    # What transformers' lazy mappings fetch from `transformers.models.salmonn_o1`.
    if name == CONFIG_CLASS:
        from salmonn_o1.config import SalmonnO1Config as value
    elif name == MODEL_CLASS:
        from salmonn_o1.model.modeling import SalmonnO1ForConditionalGeneration as value
    elif name == PROCESSOR_CLASS:
        from salmonn_o1.processor import SalmonnO1Processor as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return value


def _add_names(module: Any) -> None:
    """Our names into the tables of one transformers Auto module (idempotent)."""
    sys.modules.setdefault(ALIAS, sys.modules[__name__])
    for table, class_name in TABLES[module.__name__]:
        names = getattr(module, table, None)
        if names is not None:
            names.setdefault(MODEL_TYPE, class_name)
    # A mapping object inverts the config table when it is built: one built before we added
    # the config name (salmonn_o1 imported after transformers' Auto modules) learns it here.
    for value in list(vars(module).values()):
        reverse = getattr(value, "_reverse_config_mapping", None)
        if isinstance(reverse, dict):
            reverse.setdefault(CONFIG_CLASS, MODEL_TYPE)


class _ThenAddNames:
    """A loader that runs the real one, then `_add_names` on the module it executed."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        _add_names(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... of the real loader
        return getattr(self.loader, name)


class _AutoModulesFinder:
    """A meta-path finder that only wraps the loaders of the transformers modules in `TABLES`."""

    def find_spec(self, fullname: str, path=None, target=None) -> ModuleSpec | None:
        if fullname not in TABLES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenAddNames(spec.loader)
                return spec
        return None


def install() -> None:
    """Register salmonn-o1 with transformers' Auto classes now or whenever they are imported."""
    if not any(isinstance(finder, _AutoModulesFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AutoModulesFinder())
    for name in TABLES:
        module = sys.modules.get(name)
        if module is not None:
            _add_names(module)
