"""Configuration: the run profiles, the runtime (seeds, threads, device, precision) and the class labels.
Imports nothing of msa_utils."""
