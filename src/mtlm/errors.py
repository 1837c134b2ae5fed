"""The two exception types that carry user mistakes; the CLI prints them as one line, exit 2."""


class MtlmError(Exception):
    """A mistake in what the user gave mtlm; its message names the file, line or key at fault."""


class ConfigError(MtlmError):
    """An invalid experiment configuration or command-line value."""


class DataError(MtlmError):
    """Unreadable or inconsistent task data."""
