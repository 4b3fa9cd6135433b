"""AsyncRubinClient: Rubin's REST API (/api/v1), asynchronous (asyncio or trio), over httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TypeVar

import httpx

from rubin_client import _calls
from rubin_client._calls import Call
from rubin_client.errors import from_transport
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
)
from rubin_client.streams import AsyncEventStream

T = TypeVar("T")


class AsyncRubinClient:
    """One API key's view of a Rubin instance.

    `base_url` is the instance's address (`https://rubin.example.com`; `/api/v1` is added unless present),
    `api_key` a key made in the account page (`rk-...`). `timeout` (seconds, or an httpx.Timeout) bounds
    each request and, in a stream, each wait for the next piece. Pass `http_client` to use your own
    httpx.AsyncClient (proxies, certificates); it is then yours to close. Use it with `async with`, or
    call `aclose()`. Failures raise RubinError subclasses (rubin_client.errors).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = _calls.api_base(base_url)
        self._headers = _calls.headers(api_key)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)

    # ------------------------------------------------------------------ plumbing

    async def _request(self, call: Call[T], *, stream: bool = False) -> httpx.Response:
        request = self._http.build_request(
            call.method, self.base_url + call.path, params=call.params, json=call.json, headers=self._headers
        )
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise from_transport(exc) from exc
        return response

    async def _run(self, call: Call[T]) -> T:
        return _calls.read_answer(call, await self._request(call))

    async def _stream(self, call: Call[T]) -> AsyncEventStream:
        response = await self._request(call, stream=True)
        if response.is_error or not response.headers.get("content-type", "").startswith("text/event-stream"):
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise from_transport(exc) from exc
            finally:
                await response.aclose()
            _calls.check_stream(response)
        return AsyncEventStream(response)

    async def aclose(self) -> None:
        """Close the connections (not those of an http_client given to the constructor)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncRubinClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ conversations

    async def conversations(self, q: str = "", offset: int = 0, limit: int = 50) -> Page[Conversation]:
        """A page of the user's conversations, newest first; `q` keeps those whose title contains it."""
        return await self._run(_calls.list_conversations(q, offset, limit))

    async def iter_conversations(self, q: str = "", page_size: int = 100) -> AsyncIterator[Conversation]:
        """Every conversation (newest first, `q` as in `conversations`), a page at a time (`async for`)."""
        offset: int | None = 0
        while offset is not None:
            page = await self.conversations(q=q, offset=offset, limit=page_size)
            for conversation in page.data:
                yield conversation
            offset = page.next_offset

    async def create_conversation(self, title: str = "", model: str = "") -> Conversation:
        """An empty conversation (`model` empty: the instance's default model)."""
        return await self._run(_calls.create_conversation(title, model))

    async def conversation(
        self, conversation_id: str, before: int | None = None, limit: int = 100
    ) -> ConversationDetail:
        """A conversation with its newest `limit` messages (oldest first), or those before message id `before`."""
        return await self._run(_calls.read_conversation(conversation_id, before, limit))

    async def rename(self, conversation_id: str, title: str) -> Conversation:
        """Give a conversation a title (an automatic title never replaces it afterwards)."""
        return await self._run(_calls.rename(conversation_id, title))

    async def delete(self, conversation_id: str) -> None:
        """Delete a conversation and its messages (its running answer is stopped first)."""
        await self._run(_calls.delete(conversation_id))

    # ------------------------------------------------------------------ answers

    async def send(self, conversation_id: str | None, content: str, model: str = "") -> Exchange:
        """Ask in a conversation (None: start a new one) and wait for the whole answer.

        The answer may still have failed or been stopped: check `exchange.answer.status`.
        """
        return await self._run(_calls.send(conversation_id, content, model, stream=False))

    async def stream(self, conversation_id: str | None, content: str, model: str = "") -> AsyncEventStream:
        """Ask in a conversation (None: start a new one); the answer's events as they come.

        HTTP errors (a limit, an unknown conversation) are raised here, before any event.
        """
        return await self._stream(_calls.send(conversation_id, content, model, stream=True))

    async def regenerate(self, conversation_id: str, model: str = "") -> Exchange:
        """Answer the conversation's last question again (the previous answer is replaced) and wait for it."""
        return await self._run(_calls.regenerate(conversation_id, model, stream=False))

    async def stream_regenerate(self, conversation_id: str, model: str = "") -> AsyncEventStream:
        """Answer the conversation's last question again; the new answer's events as they come."""
        return await self._stream(_calls.regenerate(conversation_id, model, stream=True))

    async def stop(self, conversation_id: str) -> bool:
        """Stop the conversation's running answer (what was written is kept); False when none was running."""
        return await self._run(_calls.stop(conversation_id))

    # ------------------------------------------------------------------ keys and usage

    async def keys(self) -> list[ApiKey]:
        """The user's API keys (revoked ones too), newest first."""
        return await self._run(_calls.list_keys())

    async def create_key(
        self,
        name: str,
        scopes: Iterable[str] = (),
        expires_days: float | None = None,
        *,
        requests_per_minute: int | None = None,
        tokens_per_day: int | None = None,
    ) -> CreatedKey:
        """A new key for the same user, with at most this key's scopes (none given: chat and conversations).

        `.key` holds the key itself, shown this once.
        """
        return await self._run(_calls.create_key(name, scopes, expires_days, requests_per_minute, tokens_per_day))

    async def revoke_key(self, key_id: int) -> ApiKey:
        """Revoke one of the user's keys (at once, on every worker); the key as revoked."""
        return await self._run(_calls.revoke_key(key_id))

    async def usage(self, days: int = 30, by: UsageGrouping = "day") -> UsageReport:
        """The user's usage (chat page and APIs) over the last `days`, per day, model, key or source."""
        return await self._run(_calls.usage(days, by))

    # ------------------------------------------------------------------ admin (keys with the `admin` scope)

    async def admin_keys(self) -> list[ApiKey]:
        """Every user's keys, with `owner_email`."""
        return await self._run(_calls.list_keys(admin=True))

    async def admin_revoke_key(self, key_id: int) -> ApiKey:
        """Revoke anyone's key."""
        return await self._run(_calls.revoke_key(key_id, admin=True))

    async def admin_usage(self, days: int = 30, by: AdminUsageGrouping = "day") -> UsageReport:
        """Everyone's usage, per day, model, key, source or user."""
        return await self._run(_calls.usage(days, by, admin=True))
