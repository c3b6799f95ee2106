"""Helpers for the reproducible study "Multimodal Sentiment Analysis Using the FLAVA Model": the numbered notebooks
under ``notebooks/`` call them in order and :mod:`~msa_utils.runner.study` runs the notebooks (``msa-study``).
``docs/design.md`` maps every module to its one concern and its layer."""

__version__ = "0.1.0"
