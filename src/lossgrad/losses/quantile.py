"""Losses of the quantile family (being written)."""

__all__: list[str] = []
