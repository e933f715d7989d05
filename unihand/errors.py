"""Errors meant for the user: printed as one line by the CLI (exit code 2)."""


class UserError(Exception):
    """Bad input from the user: a file, field or value that cannot be used as given."""


def require(module: str, extra: str, what: str):
    """``import module`` for ``what`` (a command or feature), or a one-line :class:`UserError` naming the
    optional dependency group (``pip install 'unihand[extra]'``) that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = getattr(err, "name", None) or module
        raise UserError(f"{what} needs {missing.split('.')[0]}, which is not installed: "
                        f"pip install 'unihand[{extra}]'") from err
