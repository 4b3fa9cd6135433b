"""SQLModel tables and their schemas."""

# Tables of the domain packages, registered with the same metadata (alembic, foreign keys).
from rubin_app.accounts.group_models import Group, GroupMember
from rubin_app.accounts.models import ApiKey
from rubin_app.accounts.twofactor_models import Passkey, PendingLogin, RecoveryCode, TotpSecret
from rubin_app.assistants.models import Assistant
from rubin_app.connections.models import Connection
from rubin_app.knowledge.models import KnowledgeBase, KnowledgeChunk, KnowledgeFile
from rubin_app.memory.models import Memory, Personalisation
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
from rubin_app.usage.models import UsageRecord
from rubin_app.vault.models import UserKey
from rubin_app.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "AppSetting",
    "Assistant",
    "AuditEvent",
    "AuthSession",
    "Connection",
    "Conversation",
    "ConversationPublic",
    "Group",
    "GroupMember",
    "KnowledgeBase",
    "KnowledgeChunk",
    "KnowledgeFile",
    "LoginAttempt",
    "Memory",
    "Message",
    "MessagePublic",
    "MessageRole",
    "MessageStatus",
    "Passkey",
    "PendingLogin",
    "Personalisation",
    "RecoveryCode",
    "Role",
    "TotpSecret",
    "UsageRecord",
    "User",
    "UserKey",
    "UserLimit",
    "UserPublic",
    "WebhookDelivery",
    "WebhookEndpoint",
]
