"""The one exception type for bad input: its message is what the user reads."""


class InputError(ValueError):
    """Raised for bad input data or settings; the message names the file and the place."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message ("" when it has none), for a one-line reason."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""
