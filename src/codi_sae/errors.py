"""The one exception type for bad input: its message is what the user reads."""


class InputError(ValueError):
    """Raised for bad input data or settings; the message names the file and the place."""
