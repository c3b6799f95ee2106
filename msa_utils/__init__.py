"""Helpers for the reproducible study "Multimodal Sentiment Analysis Using the FLAVA Model".

The numbered notebooks under ``notebooks/`` call this package in order: :mod:`~msa_utils.data.posts`
builds the post table (notebook 01), :mod:`~msa_utils.data.splits` splits it (03),
:mod:`~msa_utils.experiments.dataset` and :mod:`~msa_utils.experiments.variants` train and evaluate the models (04, 05),
:mod:`~msa_utils.report.plots` and :mod:`~msa_utils.report.summary` draw and report (06);
:mod:`~msa_utils.runner.study` runs them all (``msa-study``). ``docs/design.md`` maps every module to
its one concern.
"""

__version__ = "0.1.0"
