"""The miniature model's research: how a 9.5 MB audio-visual model was taught to reason on AVR-Synth.

Everything here is a component that a recipe in `recipes/mini-*.yaml` names
(curriculum data sources, the option-letter objective, the recall-circuit
initialisation, perception pretraining) or a record of finished experiments
(`reproduce`, results, probes). The core `salmonn_o1` package never imports
this one; it imports `salmonn_o1`.
"""
