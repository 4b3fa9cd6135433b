"""What the webhook services refuse, with a stable code and the HTTP status an API answers with."""

from __future__ import annotations


class WebhookError(Exception):
    """A refused webhook operation; `message` is safe to show the user (never a secret or a payload)."""

    code = "webhook_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EndpointNotFound(WebhookError):
    """No such endpoint for this user (another user's endpoint is not found either)."""

    code = "webhook_not_found"
    status = 404


class DeliveryNotFound(WebhookError):
    """No such delivery on one of this user's endpoints."""

    code = "webhook_delivery_not_found"
    status = 404


class InvalidEndpoint(WebhookError):
    """The URL is refused (scheme, credentials, a private address), or the events or description are invalid."""

    code = "webhook_invalid"
    status = 422


class WebhookForbidden(WebhookError):
    """Only admins manage instance endpoints."""

    code = "webhook_forbidden"
    status = 403


class WebhooksNotAllowed(WebhookError):
    """The user's groups do not allow webhooks (issue #13 permissions)."""

    code = "webhooks_not_allowed"
    status = 403


class EndpointDisabled(WebhookError):
    """The endpoint is disabled: enable it before sending to it."""

    code = "webhook_disabled"
    status = 409


class TooManyEndpoints(WebhookError):
    """The owner already has the most endpoints allowed."""

    code = "webhook_too_many"
    status = 409
