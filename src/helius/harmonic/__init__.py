"""HarmonicVAE (seed 002): a mel-spectrogram VAE with a psychoacoustic objective, and the learned
vocoder that turns mel spectrograms back into audio (its own model kind, reusable elsewhere)."""
