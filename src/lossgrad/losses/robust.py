"""Losses of the robust family (being written)."""

__all__: list[str] = []
