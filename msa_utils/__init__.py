"""Helpers for the reproducible study "Multimodal Sentiment Analysis Using the FLAVA Model".

One module per concern; the numbered notebooks under ``notebooks/`` call them in order:

========================  ==============================================================
module                    concern
========================  ==============================================================
``profiles``              named run profiles (``paper``, ``cpu``, ``smoke``) and paths
``data_report``           the report that counts and names every dropped/repaired item
``io``                    atomic writes (temporary file + rename)
``seed``                  one place that fixes every random seed
``data``                  reading the MVSA layout into one table
``images``                safe image loading (size bound, mode repair)
``text``                  the paper's text cleaning
``translate``             language detection and cached, time-bounded translation
``splits``                stratified split and inverse-frequency re-sampling
``encoders``              frozen text/image encoders (``flava`` and ``compact`` backbones)
``features``              on-disk cache of frozen-encoder outputs (safetensors)
``model``                 projections + multimodal encoder + MLP head
``train``                 training loop, early stopping, checkpoints, prediction
``metrics``               accuracy / F1 and the baselines (majority, linear probe)
``plots``                 the study's figures
``study``                 the papermill runner (``msa-study``)
========================  ==============================================================
"""

__version__ = "0.1.0"

LABELS = ("positive", "negative", "neutral")
"""Class names in the paper's id order: positive 0, negative 1, neutral 2."""

LABEL2ID = {name: i for i, name in enumerate(LABELS)}
