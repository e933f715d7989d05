"""Diffusion schedules (diffusers) and the guided sampling loop."""
