"""One hierarchy for every error the bridge raises on purpose."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of all errors the bridge raises deliberately."""


class ConfigError(BridgeError):
    """The configuration is invalid; ``key`` names the offending setting."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class WebhookError(BridgeError):
    """A webhook was rejected; ``status`` and ``code`` become the HTTP answer."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class VerificationFailed(WebhookError):
    """Missing or wrong signature/token. The HTTP body never says which part failed."""

    status = 401
    code = "unauthorized"


class UnknownEvent(WebhookError):
    """The event name is missing or not one this platform sends."""

    status = 400
    code = "unknown_event"


class InvalidPayload(WebhookError):
    """The body is not the JSON document the platform sends for this event."""

    status = 400
    code = "invalid_payload"


class PayloadTooLarge(WebhookError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(WebhookError):
    status = 415
    code = "unsupported_media_type"


class UnknownShop(WebhookError):
    status = 404
    code = "unknown_shop"


class PublishUnavailable(BridgeError):
    """Kafka did not acknowledge the write in time; the platform should retry."""


class PlatformError(BridgeError):
    """A platform API call failed; ``retryable`` tells the relay what to do."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class RequestTooLarge(PlatformError):
    """A write would exceed the platform's per-request size limit; refused locally."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"request body of {size} bytes exceeds the platform limit of {limit} bytes",
            status=None,
            retryable=False,
        )
        self.size = size
        self.limit = limit


class UsageError(BridgeError):
    """The command line asks for something that cannot be done as given; nothing was tried."""


class ListenError(BridgeError):
    """A port this process must serve on cannot be bound (taken, or not allowed)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot listen on {host}:{port}: {reason} (is another process using it? pick another"
            " port with the command's port option)"
        )
        self.host, self.port = host, port
