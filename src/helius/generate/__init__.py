"""Making audio with trained models: reconstruction, dream, streaming transformation, export."""
