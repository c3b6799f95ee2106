"""The study's data parts, the variants over seeds, baselines, statistics, claims and predictions."""
