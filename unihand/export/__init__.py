"""Exporters: one registry of output formats (npz, json, bvh, html, png, obj, glb) shared by
``unihand export``, ``unihand generate --format`` and ``unihand estimate``."""

from unihand.export.registry import REGISTRY, Exporter, export_motion, parse_formats, register

__all__ = ["REGISTRY", "Exporter", "export_motion", "parse_formats", "register"]
