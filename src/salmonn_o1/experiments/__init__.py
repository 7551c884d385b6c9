"""Laptop-scale reproductions of the paper's claims on AVR-Synth (the miniature model's results)."""
