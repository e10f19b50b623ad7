"""The errors that mean "the input is wrong", not "stillmotion is wrong".

Everything stillmotion raises about a user's files, configs, names or numbers is a `UsageError`
(a `ValueError`, so `except ValueError` still catches it): the command line prints its message
and exits with status 2. Any other exception is a bug and keeps its traceback.
"""


class UsageError(ValueError):
    """Bad input: the message names what was wrong and what to do."""
