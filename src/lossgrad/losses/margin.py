"""Losses of the margin family (being written)."""

__all__: list[str] = []
