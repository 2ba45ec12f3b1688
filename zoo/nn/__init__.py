"""Layers shared by the zoo's methods."""
