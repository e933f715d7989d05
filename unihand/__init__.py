"""UniHand: one diffusion model that estimates and generates 4D hand motion."""

__version__ = "0.1.0"
