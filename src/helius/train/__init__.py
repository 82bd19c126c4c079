"""Training: one loop (`trainer.fit`) for every model, and one small task module per model kind."""
