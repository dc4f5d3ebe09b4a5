"""The one exception type that means "the user gave us something we cannot use"."""


class UserError(Exception):
    """Bad input (prompt, config, path, model id).

    The CLI prints the message as a single line on stderr and exits with code 2, so every message
    must name the problem and the fix in one sentence.
    """
