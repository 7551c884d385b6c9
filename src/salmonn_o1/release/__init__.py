"""The released video-SALMONN-o1 checkpoint layout: key map, config translation, loading, writing.

The release is a LLaVA-style directory (a Qwen2 `config.json` with extra
multimodal fields, weights under `model.*`, `speech_*`, `final_linear.*`),
plus Whisper and SigLIP weights that may live in their own checkpoints.
Everything here translates that layout to ours and back. It is an adapter
above the model: the model never imports it and never sees a released name
(as transformers keeps foreign checkpoint names out of a model class);
`salmonn_o1.checkpoints.load_model_and_processor` and `salmonn-o1 convert`
call it.
"""
