"""What the domain can refuse. The web layer maps these to problem+json; the domain knows nothing of HTTP."""


class DomainError(Exception):
    """Base: `title` is the short summary shown to API users, the message the detail."""
    title = "Request refused"


class NotFound(DomainError):
    title = "Not found"


class InsufficientPoints(DomainError):
    title = "Not enough points"


class Conflict(DomainError):
    title = "Conflict"


class InvalidInput(DomainError):
    """A value the schema accepted but the domain cannot use; `field` names it."""
    title = "Validation failed"

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class Forbidden(DomainError):
    """Allowed to this caller's kind of key only in some cases (a till undoing its own last entry)."""
    title = "Forbidden"
