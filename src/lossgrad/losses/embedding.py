"""Losses of the embedding family (being written)."""

__all__: list[str] = []
