"""Training the Affinity-VAE: options, memory-mapped data, the loop, DDP helpers."""
