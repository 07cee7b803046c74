"""Losses of the segmentation family (being written)."""

__all__: list[str] = []
