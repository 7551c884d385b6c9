"""salmonn-o1: reasoning-enhanced audio-visual LLMs (video-SALMONN-o1, re-implemented)."""

__version__ = "0.1.0"
