"""Errors a user can fix. The CLI prints them as one line and exits non-zero, never a traceback."""


class RefereeError(Exception):
    """A problem with the user's input, settings or environment, stated so it can be fixed."""


class ServerError(RefereeError):
    """A model server could not be reached or refused a request (after any retries)."""


class UnsupportedError(RefereeError):
    """A backend cannot do what was asked (for example a server that returns no logprobs)."""
