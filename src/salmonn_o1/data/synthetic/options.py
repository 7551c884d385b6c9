"""Option-letter items: "Which option is the purple circle?" with AVR-Synth's kinds of options.

Every AVR-Synth answer ends by mapping what it concluded to a letter ("The purple circle is
option C."). The miniature LLM learns this for sounds and counts but not for two-word shapes
among options that share a colour or a shape: in a real item the letter is one token in a
hundred, and neither more SFT steps nor a loss on the letter alone taught it. Items that are
nothing but this look-up do, in about 200 steps, and the skill carries over to real items
(src/salmonn_o1_mini/docs/notebook.md, "The option letter").
"""

from __future__ import annotations

import numpy as np

from salmonn_o1.data.schema import Item
from salmonn_o1.data.synthetic.dataset import clip_seed
from salmonn_o1.data.synthetic.timeline import COLOURS, SHAPES, SOUNDS
from salmonn_o1.prompts import OPTION_LETTERS

OPTIONS_TASK = "options"
SEED_SALT = 7_919  # keeps these items' draws apart from the clip with the same index


def shape_options(rng: np.random.Generator) -> tuple[str, list[str]]:
    """A shape and three others, two of them sharing its colour or its shape (as AVR-Synth's do)."""
    colours, shapes = list(COLOURS), list(SHAPES)
    colour, shape = str(rng.choice(colours)), str(rng.choice(shapes))
    near = [(c, s) for c in colours for s in shapes if (c == colour) != (s == shape)]
    far = [(c, s) for c in colours for s in shapes if c != colour and s != shape]
    picks = [near[i] for i in rng.choice(len(near), 2, replace=False)] + [far[int(rng.integers(len(far)))]]
    return f"{colour} {shape}", [f"{c} {s}" for c, s in picks]


def option_item(split: str, index: int) -> Item:
    """Item `index` of `split`: a shape (60%), a sound (20%) or a count (20%) to find among four options."""
    rng = np.random.default_rng([clip_seed(split, index), SEED_SALT])
    kind = rng.choice(["shape", "sound", "count"], p=[0.6, 0.2, 0.2])
    if kind == "count":  # counts are listed 0..3, as the counting family lists them
        count = int(rng.integers(4))
        named, options, position = str(count), [str(n) for n in range(4)], count
    else:
        if kind == "shape":
            entity, others = shape_options(rng)
        else:
            entity, *others = (str(k) for k in rng.choice(list(SOUNDS), 4, replace=False))
        article = "a" if kind == "shape" else "the"
        labels, order = [entity, *others], rng.permutation(4)
        named, options = f"the {entity}", [f"{article} {labels[i]}" for i in order]
        position = int(np.flatnonzero(order == 0)[0])
    answer = OPTION_LETTERS[position]
    subject = named[0].upper() + named[1:]
    return Item(id=f"avr-{split}-options-{index:06d}", video=None, question=f"Which option is {named}?",
                options=options, answer=answer, steps=[f"{subject} is option {answer}."], category=OPTIONS_TASK,
                source="avr-synth", extras={"task": OPTIONS_TASK, "split": split, "index": index, "kind": str(kind)})
