"""Helpers for the reproducible study "Multimodal Sentiment Analysis Using the FLAVA Model".

The numbered notebooks under ``notebooks/`` call this package in order: :mod:`~msa_utils.posts`
builds the post table (notebook 01), :mod:`~msa_utils.splits` splits it (03),
:mod:`~msa_utils.dataset` and :mod:`~msa_utils.variants` train and evaluate the models (04, 05),
:mod:`~msa_utils.plots` and :mod:`~msa_utils.summary` draw and report (06);
:mod:`~msa_utils.study` runs them all (``msa-study``). ``docs/design.md`` maps every module to
its one concern.
"""

__version__ = "0.1.0"

LABELS = ("positive", "negative", "neutral")
"""Class names in the paper's id order: positive 0, negative 1, neutral 2."""

LABEL2ID = {name: i for i, name in enumerate(LABELS)}
