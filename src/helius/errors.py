"""Errors a user can cause: each names the file, field or flag at fault and what to do."""


class HeliusError(Exception):
    """Base class for every error caused by user input rather than by a bug."""


class ConfigError(HeliusError):
    """A config file, key or value is wrong."""


class AudioError(HeliusError):
    """An audio file cannot be read or written."""


class MissingToolError(HeliusError):
    """An optional external program (ffmpeg, PortAudio, ...) is needed but not installed."""


class DataError(HeliusError):
    """A data folder or prepared data set cannot be used."""


class TrainingError(HeliusError):
    """Training cannot go on (e.g. the loss keeps diverging after every recovery)."""
