"""What APNs answered for one token, and what that means for the caller (keep, drop, retry, fix config)."""

from __future__ import annotations

from dataclasses import dataclass

# Reasons of pushes APNs never answered (status 0).
CONNECTION_FAILED = "ConnectionFailed"
TIMED_OUT = "Timeout"
TLS_REJECTED = "TLSCertificateRejected"
# Apple's 400 reasons that condemn the token for this topic (or, for every token at once, the certificate).
BAD_TOKEN_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic"})


@dataclass(frozen=True, slots=True)
class PushResult:
    """APNs' answer for one token; status 0 means no answer, and reason says why."""

    token: str
    status: int
    reason: str | None = None
    retry_after: float | None = None
    timestamp: int | None = None  # Apple, 410 only: ms since epoch when the token stopped being valid

    @property
    def outcome(self) -> str:
        """What the caller does: "ok", "unregistered" (drop it), "retry" or "fatal" (fix config)."""
        return classify(self.status, self.reason)


def classify(status: int, reason: str | None) -> str:
    """Map an APNs status and reason to ok / unregistered / retry / fatal."""
    if status == 200:
        return "ok"
    # Apple: 410 = the token is no longer active for the topic; 400 BadDeviceToken / DeviceTokenNotForTopic =
    # not a token of this topic. Under a wrong certificate every token answers the latter: callers that delete
    # registrations must tell the two apart (workers.wallet_push does).
    if status == 410 or (status == 400 and reason in BAD_TOKEN_REASONS):
        return "unregistered"
    if status == 429 or status >= 500:
        return "retry"
    if status == 0:
        return "fatal" if reason == TLS_REJECTED else "retry"
    return "fatal"  # 403 certificate, 400 topic, 404/405/413: our configuration or our bug
