"""Losses of the binary family (being written)."""

__all__: list[str] = []
