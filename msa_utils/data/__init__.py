"""Inputs: reading the MVSA layout, decoding, images, text cleaning, translation, the post table, the data report and the splits."""
