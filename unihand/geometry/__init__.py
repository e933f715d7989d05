"""Geometry: rotations, cameras, canonical frame, mirroring and alignment (torch and numpy)."""
