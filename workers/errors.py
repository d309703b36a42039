"""How a delivery handler tells the job runner what to do next."""


class RetryLater(Exception):
    """The other side failed in a way that may pass (429, 5xx, a dropped connection)."""


class DeliveryFailed(Exception):
    """Retrying cannot help (a rejected certificate, a topic we may not push to): a dead letter at once."""
