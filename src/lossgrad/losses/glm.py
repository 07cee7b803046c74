"""Losses of the glm family (being written)."""

__all__: list[str] = []
