"""Observation-consistent refinement of generated motion (see :mod:`unihand.refine.refiner`)."""
