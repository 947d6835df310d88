"""User-facing errors.

A `MedaugError` is bad input the user can fix (a missing file, an unknown name, a
wrong shape). The CLI prints its message on one line and exits with code 2; every
layer raises it *before* writing anything, so a refused run leaves no files behind.
"""


class MedaugError(Exception):
    """Bad input: the message names the file/field and what was expected."""

    exit_code = 2
