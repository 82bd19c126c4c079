"""The Audio Editor (seed 003): learns edits (cuts, loops, skips, fades, where to stop) from
raw/edited pairs and edits new tracks by copying and reordering frames of the raw audio."""
