"""Figures, exploration, REPORT.md and the generated blocks of the docs."""
