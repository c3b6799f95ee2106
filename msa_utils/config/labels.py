"""The three classes in the paper's id order: positive 0, negative 1, neutral 2."""

LABELS = ("positive", "negative", "neutral")
LABEL2ID = {name: i for i, name in enumerate(LABELS)}
"""Class name to id."""
