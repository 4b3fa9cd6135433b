"""SQLModel tables and their schemas."""

from rubin_app.models.chat import (
    Conversation,
    ConversationPublic,
    Message,
    MessagePublic,
    MessageRole,
    MessageStatus,
)
from rubin_app.models.user import User

__all__ = [
    "Conversation",
    "ConversationPublic",
    "Message",
    "MessagePublic",
    "MessageRole",
    "MessageStatus",
    "User",
]
