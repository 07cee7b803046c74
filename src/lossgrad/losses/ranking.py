"""Losses of the ranking family (being written)."""

__all__: list[str] = []
