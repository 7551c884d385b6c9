"""The miniature model's research: how a 9.5 MB audio-visual model was taught to reason on AVR-Synth.

Everything here is a component that a recipe in `recipes/mini-*.yaml` names
(curriculum data sources, the option-letter objective, `recall_circuit.RecallCircuit`
under `model.components`, `perception.PerceptionObjective` as the perception stage's
`objective`) or a record of finished experiments (`reproduce` and its
`salmonn-o1 reproduce` command in `commands`, `results`, `probes`, `media_use`, the
probe scripts in `scripts/` and the lab notebook in `docs/notebook.md`). The core
`salmonn_o1` package never imports this one; it imports `salmonn_o1`.
"""
