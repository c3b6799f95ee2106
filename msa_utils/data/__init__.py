"""Inputs: reading the MVSA layout or a table of posts (and checking them before notebook 01), decoding, images, text
cleaning, translation, the post table, the data report and the splits."""
