"""The released video-SALMONN-o1 checkpoint layout: key map, config translation, loading, writing.

The release is a LLaVA-style directory (a Qwen2 `config.json` with extra
multimodal fields, weights under `model.*`, `speech_*`, `final_linear.*`),
plus Whisper and SigLIP weights that may live in their own checkpoints.
Everything here translates that layout to ours and back; the model code
never sees a released name.
"""
