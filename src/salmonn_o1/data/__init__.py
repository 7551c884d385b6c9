"""Data: the item/prediction schema, benchmark loaders, and the AVR-Synth generator."""

from salmonn_o1.data.schema import (
    Item,
    Prediction,
    answer_kind,
    read_items,
    read_predictions,
    write_items,
    write_predictions,
)

__all__ = [
    "Item",
    "Prediction",
    "answer_kind",
    "read_items",
    "read_predictions",
    "write_items",
    "write_predictions",
]
