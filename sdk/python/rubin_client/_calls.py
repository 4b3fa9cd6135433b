"""Every API call once, as data: method, path, query, body and how to read the answer. The sync and the
async client both run these, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from rubin_client._version import __version__
from rubin_client.errors import RubinError, from_response
from rubin_client.models import (
    AdminUsageGrouping,
    ApiKey,
    Conversation,
    ConversationDetail,
    CreatedKey,
    Exchange,
    Page,
    UsageGrouping,
    UsageReport,
    conversation_page,
)

T = TypeVar("T")
API_PATH = "/api/v1"


def api_base(base_url: str) -> str:
    """The API's root URL from a Rubin address (`https://rubin.example.com` or `.../api/v1`)."""
    base = base_url.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


def headers(api_key: str) -> dict[str, str]:
    """The headers of every request: the key, and who is calling."""
    if not api_key:
        raise ValueError("an API key is required (rk-...: make one in Rubin's account page)")
    return {"Authorization": f"Bearer {api_key}", "User-Agent": f"rubin-client-python/{__version__}"}


def _seg(value: str | int) -> str:
    """One path segment, escaped."""
    return quote(str(value), safe="")


def _nothing(_: Any) -> None:
    return None


def _keys(data: Any) -> list[ApiKey]:
    return [ApiKey.from_json(k) for k in data]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reader of its JSON answer (None for an empty answer)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, str | int] | None = None
    json: Mapping[str, Any] | None = None


def read_answer(call: Call[T], response: httpx.Response) -> T:
    """The result of a call from its (read) response; the matching RubinError when it failed."""
    if response.is_error:
        raise from_response(response)
    if response.status_code == 204 or not response.content:
        return call.parse(None)
    try:
        data = response.json()
    except ValueError as exc:
        raise RubinError("the answer is not JSON", status=response.status_code, code="invalid_response") from exc
    return call.parse(data)


def check_stream(response: httpx.Response) -> None:
    """Raise unless a response (its body read if it failed) is an event stream."""
    if response.is_error:
        raise from_response(response)
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        raise RubinError("the answer is not an event stream", status=response.status_code, code="invalid_response")


def list_conversations(q: str, offset: int, limit: int) -> Call[Page[Conversation]]:
    """GET /conversations."""
    params: dict[str, str | int] = {"offset": offset, "limit": limit}
    if q:
        params["q"] = q
    return Call("GET", "/conversations", conversation_page, params=params)


def create_conversation(title: str, model: str) -> Call[Conversation]:
    """POST /conversations."""
    return Call("POST", "/conversations", Conversation.from_json, json={"title": title, "model": model})


def read_conversation(conversation_id: str, before: int | None, limit: int) -> Call[ConversationDetail]:
    """GET /conversations/{id}."""
    params: dict[str, str | int] = {"limit": limit}
    if before is not None:
        params["before"] = before
    return Call("GET", f"/conversations/{_seg(conversation_id)}", ConversationDetail.from_json, params=params)


def rename(conversation_id: str, title: str) -> Call[Conversation]:
    """PATCH /conversations/{id}."""
    return Call("PATCH", f"/conversations/{_seg(conversation_id)}", Conversation.from_json, json={"title": title})


def delete(conversation_id: str) -> Call[None]:
    """DELETE /conversations/{id}."""
    return Call("DELETE", f"/conversations/{_seg(conversation_id)}", _nothing)


def send(conversation_id: str | None, content: str, model: str, *, stream: bool) -> Call[Exchange]:
    """POST /conversations/{id or "new"}/messages."""
    path = f"/conversations/{_seg(conversation_id or 'new')}/messages"
    return Call("POST", path, Exchange.from_json, json={"content": content, "model": model, "stream": stream})


def regenerate(conversation_id: str, model: str, *, stream: bool) -> Call[Exchange]:
    """POST /conversations/{id}/regenerate."""
    path = f"/conversations/{_seg(conversation_id)}/regenerate"
    return Call("POST", path, Exchange.from_json, json={"model": model, "stream": stream})


def stop(conversation_id: str) -> Call[bool]:
    """POST /conversations/{id}/stop."""
    return Call("POST", f"/conversations/{_seg(conversation_id)}/stop", lambda data: bool(data["stopped"]))


def list_keys(*, admin: bool = False) -> Call[list[ApiKey]]:
    """GET /keys (admin: /admin/keys)."""
    return Call("GET", "/admin/keys" if admin else "/keys", _keys)


def create_key(
    name: str,
    scopes: Iterable[str],
    expires_days: float | None,
    requests_per_minute: int | None,
    tokens_per_day: int | None,
) -> Call[CreatedKey]:
    """POST /keys."""
    body = {
        "name": name, "scopes": list(scopes), "expires_days": expires_days,
        "requests_per_minute": requests_per_minute, "tokens_per_day": tokens_per_day,
    }  # fmt: skip
    return Call("POST", "/keys", CreatedKey.from_json, json=body)


def revoke_key(key_id: int, *, admin: bool = False) -> Call[ApiKey]:
    """DELETE /keys/{id} (admin: /admin/keys/{id})."""
    return Call("DELETE", f"{'/admin' if admin else ''}/keys/{_seg(key_id)}", ApiKey.from_json)


def usage(days: int, by: UsageGrouping | AdminUsageGrouping, *, admin: bool = False) -> Call[UsageReport]:
    """GET /usage (admin: /admin/usage)."""
    return Call("GET", "/admin/usage" if admin else "/usage", UsageReport.from_json, params={"days": days, "by": by})
