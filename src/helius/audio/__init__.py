"""Signal-level audio: I/O, features, procedural synthesis (no learning)."""
