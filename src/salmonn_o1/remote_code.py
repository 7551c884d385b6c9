"""The `auto_map` a saved checkpoint carries, and the tiny modules it points at.

transformers loads a directory whose model type it does not know through the
config's `auto_map` ("module.Class" per Auto class) when the caller passes
`trust_remote_code=True`: it copies `module.py` from the directory and imports
it. Ours are three-line shims that re-export the classes of the installed
`salmonn_o1` package, so a directory pushed to a hub loads the usual way
without `import salmonn_o1` first, and runs the installed code, not a copy of
it (one class per name: a copied module would define a second
`SalmonnO1Config` that the installed model refuses). Without
`trust_remote_code`, `import salmonn_o1` registers the same classes
(`salmonn_o1.auto`), and `auto_map` is not read.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_MODULE = "configuration_salmonn_o1"
MODELING_MODULE = "modeling_salmonn_o1"
PROCESSING_MODULE = "processing_salmonn_o1"

AUTO_MAP = {
    "AutoConfig": f"{CONFIG_MODULE}.SalmonnO1Config",
    "AutoModelForMultimodalLM": f"{MODELING_MODULE}.SalmonnO1ForConditionalGeneration",
    "AutoModelForImageTextToText": f"{MODELING_MODULE}.SalmonnO1ForConditionalGeneration",
    "AutoProcessor": f"{PROCESSING_MODULE}.SalmonnO1Processor",
}

_HEADER = '"""Written by salmonn-o1: loads the installed `salmonn_o1` package\'s {what} (pip install salmonn-o1)."""\n\n'
SHIMS = {
    CONFIG_MODULE: _HEADER.format(what="config") + "from salmonn_o1.config import SalmonnO1Config\n\n"
    '__all__ = ["SalmonnO1Config"]\n',
    MODELING_MODULE: _HEADER.format(what="model")
    + "from salmonn_o1.model.modeling import SalmonnO1ForConditionalGeneration\n\n"
    '__all__ = ["SalmonnO1ForConditionalGeneration"]\n',
    PROCESSING_MODULE: _HEADER.format(what="processor") + "from salmonn_o1.processor import SalmonnO1Processor\n\n"
    '__all__ = ["SalmonnO1Processor"]\n',
}


def write_remote_code(directory: str | Path) -> list[Path]:
    """Write the shim modules `AUTO_MAP` names into a checkpoint directory."""
    directory = Path(directory)
    paths = []
    for module, source in SHIMS.items():
        path = directory / f"{module}.py"
        path.write_text(source, encoding="utf-8")
        paths.append(path)
    return paths
