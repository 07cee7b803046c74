"""Losses of the multiclass family (being written)."""

__all__: list[str] = []
