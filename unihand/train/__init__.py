"""Two-stage training (joint VAE, then latent diffusion) driven by Lightning."""
