"""Adapters that let other evaluation tools run our model and benchmarks.

A layer above inference, beside the commands: an integration imports the
pipeline, the data loaders and the scorers, and nothing in the core imports an
integration. Each one imports its host tool only where the tool calls in, so
the package installs and imports without it.
"""
