"""The trained classifier: multimodal encoder, heads, the text encoder's trainable top layers."""
