"""ORM hooks: content columns are sealed on their way into the database and opened on their way out.

Objects in memory always hold clear text; rows hold the sealed form. The chat services prime a user's
cipher (`Vault.prime`) first thing; a hook that finds none loads it on the flush's or the load's own
connection. A new user gets a data key in the same transaction as the user row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import attributes

from rubin_app.memory.models import Memory, Personalisation
from rubin_app.models.chat import Conversation, Message
from rubin_app.models.user import User
from rubin_app.vault.sealing import PREFIX, is_sealed
from rubin_app.vault.service import get_vault

SEALED_FIELDS: dict[type, tuple[str, ...]] = {
    Message: ("content", "reasoning", "annotations"),
    Conversation: ("title",),
    Memory: ("text",),  # long-term memories and custom instructions (issue #15)
    Personalisation: ("about", "style"),
}
_PLAIN = "_rubin_plain"
_CIPHERS = "rubin_vault_ciphers"  # a query's opened ciphers, in its context's attributes


def field_name(model: type, attr: str) -> str:
    """The associated-data name of a column, e.g. "messages.content"."""
    return f"{model.__tablename__}.{attr}"  # type: ignore[attr-defined]


def _seal(model: type, connection: Any, target: Any, only_changed: bool) -> None:
    vault = get_vault()
    if not vault.enabled:
        return
    cipher = None
    plain: dict[str, str] = {}
    for attr in SEALED_FIELDS[model]:
        value = target.__dict__.get(attr)
        if not isinstance(value, str) or not value or is_sealed(value):
            continue
        if only_changed and not attributes.get_history(target, attr).has_changes():
            continue
        plain[attr] = value
        cipher = cipher or vault.prime_sync(connection, target.user_id)
        setattr(target, attr, cipher.seal(field_name(model, attr), value))
    target.__dict__[_PLAIN] = plain


def _restore(target: Any) -> None:
    for attr, value in target.__dict__.pop(_PLAIN, {}).items():
        attributes.set_committed_value(target, attr, value)


def _open(model: type, target: Any, context: Any, attrs: Any = None) -> None:
    """Open a loaded row's sealed columns in place (they are the loaded state: nothing is marked changed)."""
    for attr, name in _FIELD_NAMES[model]:
        if attrs is not None and attr not in attrs:
            continue
        value = target.__dict__.get(attr)
        if isinstance(value, str) and value.startswith(PREFIX):
            ciphers = context.attributes.setdefault(_CIPHERS, {})  # one key lookup per user and query
            cipher = ciphers.get(target.user_id)
            if cipher is None:
                cipher = ciphers[target.user_id] = get_vault().prime_sync(context.session.connection(), target.user_id)
            target.__dict__[attr] = cipher.show(name, value, getattr(target, "id", target.user_id))


def install() -> None:
    """Register the hooks (idempotent)."""
    for model in SEALED_FIELDS:
        if event.contains(model, "load", _listeners[model]["load"]):
            continue
        for name, fn in _listeners[model].items():
            event.listen(model, name, fn)
    if not event.contains(User, "after_insert", _new_user_key):
        event.listen(User, "after_insert", _new_user_key)


def _new_user_key(_mapper: Any, connection: Any, target: User) -> None:
    assert target.id is not None
    get_vault().add_key_sync(connection, target.id)


def _hooks(model: type) -> dict[str, Any]:
    return {
        "before_insert": lambda _m, conn, target: _seal(model, conn, target, only_changed=False),
        "before_update": lambda _m, conn, target: _seal(model, conn, target, only_changed=True),
        "after_insert": lambda _m, _c, target: _restore(target),
        "after_update": lambda _m, _c, target: _restore(target),
        "load": lambda target, ctx: _open(model, target, ctx),
        "refresh": lambda target, ctx, attrs: _open(model, target, ctx, attrs),
    }


_listeners = {model: _hooks(model) for model in SEALED_FIELDS}


_FIELD_NAMES = {model: [(attr, field_name(model, attr)) for attr in attrs] for model, attrs in SEALED_FIELDS.items()}
