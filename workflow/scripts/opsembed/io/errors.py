"""The one exception type for bad user input."""


class InputError(ValueError):
    """Bad user input. The message names the file, row or key and says what to do."""
