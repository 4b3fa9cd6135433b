"""rubin-client: a small, typed client for Rubin AI's REST API (/api/v1) and for verifying its webhooks.

from rubin_client import RubinClient

with RubinClient("https://rubin.example.com", "rk-...") as rubin:
    for event in rubin.stream(None, "Tell me about rubies"):
        ...
"""

from rubin_client._version import __version__
from rubin_client.async_client import AsyncRubinClient
from rubin_client.client import RubinClient
from rubin_client.errors import (
    AuthenticationError,
    BadRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RubinConnectionError,
    RubinError,
    ServerError,
)
from rubin_client.events import Delta, Done, Started, StreamEvent
from rubin_client.models import (
    ApiKey,
    Conversation,
    ConversationDetail,
    CreatedKey,
    Exchange,
    Message,
    Page,
    UsageReport,
    UsageRow,
)
from rubin_client.streams import AsyncEventStream, EventStream
from rubin_client.webhooks import InvalidWebhookError, WebhookEvent, verify_webhook

__all__ = [
    "ApiKey",
    "AsyncEventStream",
    "AsyncRubinClient",
    "AuthenticationError",
    "BadRequest",
    "Conversation",
    "ConversationDetail",
    "CreatedKey",
    "Delta",
    "Done",
    "EventStream",
    "Exchange",
    "InvalidWebhookError",
    "Message",
    "NotFound",
    "Page",
    "PermissionDenied",
    "RateLimited",
    "RubinClient",
    "RubinConnectionError",
    "RubinError",
    "ServerError",
    "Started",
    "StreamEvent",
    "UsageReport",
    "UsageRow",
    "WebhookEvent",
    "__version__",
    "verify_webhook",
]
