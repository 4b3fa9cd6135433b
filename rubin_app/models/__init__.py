"""SQLModel tables and their schemas."""

from rubin_app.models.auth import AppSetting, AuditEvent, AuthSession, UserLimit
from rubin_app.models.chat import (
    Conversation,
    ConversationPublic,
    Message,
    MessagePublic,
    MessageRole,
    MessageStatus,
)
from rubin_app.models.login import LoginAttempt
from rubin_app.models.user import Role, User, UserPublic

__all__ = [
    "AppSetting",
    "AuditEvent",
    "AuthSession",
    "Conversation",
    "ConversationPublic",
    "LoginAttempt",
    "Message",
    "MessagePublic",
    "MessageRole",
    "MessageStatus",
    "Role",
    "User",
    "UserLimit",
    "UserPublic",
]
