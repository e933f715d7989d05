"""Errors meant for the user: printed as one line by the CLI (exit code 2)."""


class UserError(Exception):
    """Bad input from the user: a file, field or value that cannot be used as given."""
