"""Validation of the head scores on held-out material (real textures, trained models)."""
