"""What a console action says when it cannot be done: a form's fields refused
(``FormErrors``, shown beside each field), or the service's refusal (``refusal``: its
status and the sentence the API's error body would carry, shown above the form)."""

from __future__ import annotations

from api.errors import SERVICE_ERRORS, ApiError, error_body, status_of

# What an action's call may refuse with: the API's own checks and the services' errors.
REFUSALS = (ApiError, *SERVICE_ERRORS)


class FormErrors(Exception):
    """Fields of a form refused, each with the sentence to show beside it."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


def refusal(error: Exception) -> tuple[int, str]:
    """A refused call's status and sentence: the service's or the API's own words, made a
    sentence as the API's error bodies make them."""
    if isinstance(error, ApiError):
        status, message = error.status, error.message
    else:
        status, message = status_of(error), str(error)
    return status, error_body(status, message)["error"]["message"]
