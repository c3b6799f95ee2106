"""The notebooks' setup, the papermill runner (msa-study) and the multi-process entry point."""
