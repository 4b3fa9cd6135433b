"""Async client for LocalAI or any OpenAI-compatible server: models, chat (streamed as typed events or whole),
embeddings. Errors are `LLMError`s whose codes map to HTTP statuses and messages in rubin_app.core.errors."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

import httpx

from rubin_app.core.tls import is_certificate_error
from rubin_app.llm.types import ChatRequest, Delta, Done, Params, Reasoning, StreamEvent, ToolCallDelta, Usage

log = logging.getLogger(__name__)

ErrorCode = Literal[
    "unreachable",  # connection refused / DNS / bad URL
    "timeout",  # no byte within the read timeout
    "overloaded",  # 503 / 429, possibly with Retry-After
    "auth",  # 401 / 403
    "not_found",  # unknown model or endpoint
    "bad_request",  # 400 / 422
    "server",  # other 5xx
    "upstream",  # error frame inside a 200 stream
    "dropped",  # connection lost mid-stream
    "malformed",  # a reply that is not OpenAI-compatible
    "internal",  # a bug on our side
]

MAX_RETRY_AFTER = 10.0
# After `data: [DONE]` the body should end; a server that goes on is read this many more lines, then dropped
# (a body read to its end lets the connection be reused: one TCP handshake less per answer).
MAX_LINES_AFTER_DONE = 100


class LLMError(Exception):
    """A failure talking to the model server, with a code the UI can explain."""

    def __init__(
        self, code: ErrorCode, detail: str = "", *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail[:500]
        self.status = status
        self.retry_after = retry_after


def _error_message(body: Any) -> str:
    """Pull a human message out of an OpenAI/LocalAI error body."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)[:500]
        if isinstance(err, str):
            return err[:500]
    return str(body)[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _status_error(response: httpx.Response, body: bytes, model: str | None) -> LLMError:
    """Map an HTTP error status to an LLMError."""
    try:
        detail = _error_message(json.loads(body))
    except ValueError:
        detail = body.decode("utf-8", "replace").strip()[:300]
    status = response.status_code
    if status in (401, 403):
        return LLMError("auth", detail, status=status)
    if status == 404:
        return LLMError("not_found", detail or f"model {model!r} not found", status=status)
    if status in (400, 422):
        return LLMError("bad_request", detail, status=status)
    if status in (429, 503):
        return LLMError("overloaded", detail, status=status, retry_after=_retry_after(response))
    return LLMError("server", detail, status=status)


def parse_chunk(payload: str) -> list[StreamEvent]:
    """Turn one SSE `data:` payload (a chat.completion.chunk) into events; raise on error frames."""
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("frame is not a JSON object")
    if data.get("error"):
        raise LLMError("upstream", _error_message(data))
    events: list[StreamEvent] = []
    for choice in data.get("choices") or []:
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        if reasoning:
            events.append(Reasoning(str(reasoning)))
        if delta.get("content"):
            events.append(Delta(str(delta["content"])))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            events.append(
                ToolCallDelta(
                    index=int(call.get("index", 0)),
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=str(function.get("arguments") or ""),
                )
            )
        if choice.get("finish_reason"):
            events.append(Done(str(choice["finish_reason"])))
    usage = data.get("usage")
    if isinstance(usage, dict) and usage:
        events.append(Usage(_int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens"))))
    return events


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _lines_then_blank(response: httpx.Response) -> AsyncIterator[str]:
    """The body's lines plus a final blank line, so a last frame without one is not lost."""
    async for line in response.aiter_lines():
        yield line
    yield ""


class LLMClient:
    """One pooled httpx client per server; safe to share across tasks."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        retries: int = 2,
        backoff: float = 0.5,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=connect_timeout)
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=50)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, limits=limits, verify=verify
        )

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def list_models(self) -> list[str]:
        """Model ids the server offers (GET /v1/models)."""
        response = await self._request("GET", "/v1/models", None)
        try:
            data = response.json()
            return sorted(str(m["id"]) for m in data["data"])
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMError("malformed", "GET /v1/models did not return an OpenAI model list") from exc

    async def complete(self, model: str, messages: list[dict[str, str]], *, max_tokens: int = 32) -> str:
        """A short non-streamed answer's text (titles and other side tasks)."""
        request = ChatRequest.of_turns(model, messages, Params(max_tokens=max_tokens))
        data = await self.complete_request(request)
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError("malformed", "the reply is not an OpenAI chat completion") from exc

    async def complete_request(self, request: ChatRequest) -> dict[str, Any]:
        """A whole (non-streamed) chat completion, as the server's JSON."""
        response = await self._request("POST", "/v1/chat/completions", request.body(stream=False), model=request.model)
        try:
            data = response.json()
        except ValueError as exc:
            raise LLMError("malformed", "the reply is not JSON") from exc
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise LLMError("malformed", "the reply is not an OpenAI chat completion")
        return data

    async def complete_events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent]:
        """A whole (non-streamed) completion as the events a stream would give: reasoning, the text, tool calls,
        usage, done. For callers nobody watches (no chunk parsing, one body)."""
        data = await self.complete_request(request)
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if reasoning:
                yield Reasoning(str(reasoning))
            if message.get("content"):
                yield Delta(str(message["content"]))
            for index, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") or {}
                yield ToolCallDelta(index=index, id=call.get("id"), name=function.get("name"),
                                    arguments=str(function.get("arguments") or ""))  # fmt: skip
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError("malformed", "the reply is not an OpenAI chat completion") from exc
        usage = data.get("usage")
        if isinstance(usage, dict):
            yield Usage(_int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens")))
        yield Done(str(choice.get("finish_reason") or "stop"))

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/embeddings as given (the caller validated it); the server's JSON."""
        response = await self._request("POST", "/v1/embeddings", body, model=str(body.get("model", "")))
        try:
            data = response.json()
        except ValueError as exc:
            raise LLMError("malformed", "the reply is not JSON") from exc
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise LLMError("malformed", "the reply is not an OpenAI embedding list")
        return data

    def stream_chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncGenerator[StreamEvent]:
        """Stream a text-only chat (a shorthand of `stream`)."""
        params = Params(max_tokens=max_tokens or None, temperature=temperature)
        return self.stream(ChatRequest.of_turns(model, messages, params))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent]:
        """Stream an answer as typed events; closing the iterator closes the upstream request."""
        http_request = self._http.build_request("POST", "/v1/chat/completions", json=request.body(stream=True))
        response = await self._send_with_retries(http_request, request.model)
        try:
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raise LLMError("malformed", f"expected an event stream, got {ctype or 'no content type'}")
            async for event in self._iter_events(response):
                yield event
        finally:
            await response.aclose()

    async def _iter_events(self, response: httpx.Response) -> AsyncIterator[StreamEvent]:
        finished = done = False
        bad_frames = after_done = 0
        data_lines: list[str] = []
        try:
            async for line in _lines_then_blank(response):
                if done:  # read the body to its end, so that the connection goes back to the pool
                    after_done += 1
                    if after_done > MAX_LINES_AFTER_DONE:
                        break
                    continue
                if line.startswith("data:"):
                    data_lines.append(line[5:].lstrip(" "))
                    continue
                if line or not data_lines:
                    continue  # comments, event:/id: fields, keep-alives
                payload = "\n".join(data_lines)
                data_lines = []
                if payload.strip() == "[DONE]":
                    done = True
                    continue
                try:
                    events = parse_chunk(payload)
                except (ValueError, TypeError, AttributeError):
                    bad_frames += 1
                    log.warning("skipped a malformed stream frame (%d so far)", bad_frames)
                    continue
                for event in events:
                    finished = finished or isinstance(event, Done)
                    yield event
        except httpx.ReadTimeout as exc:
            raise LLMError("timeout", "no data within the read timeout") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise LLMError("dropped", "the connection closed mid-answer") from exc
        if not finished and not done:
            raise LLMError("dropped", "the stream ended before the answer was finished")

    async def _request(self, method: str, path: str, body: Any, model: str | None = None) -> httpx.Response:
        request = self._http.build_request(method, path, json=body) if body else self._http.build_request(method, path)
        response = await self._send_with_retries(request, model)
        try:
            await response.aread()
        except httpx.TimeoutException as exc:
            raise LLMError("timeout", "no data within the read timeout") from exc
        except httpx.TransportError as exc:
            raise LLMError("dropped", "the connection closed mid-reply") from exc
        finally:
            await response.aclose()
        return response

    async def _send_with_retries(self, request: httpx.Request, model: str | None) -> httpx.Response:
        """Send, retrying connect errors, 429 and 5xx, only before any byte of the body."""
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=True)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise LLMError("unreachable", f"invalid URL {self.base_url!r}") from exc
            except httpx.ReadTimeout as exc:
                raise LLMError("timeout", f"{self.base_url} accepted the request but sent nothing") from exc
            except httpx.TimeoutException as exc:
                error = LLMError("timeout", f"{self.base_url} did not answer in time")
                cause: Exception = exc
            except httpx.TransportError as exc:
                if is_certificate_error(exc):  # retrying cannot help: say what to fix
                    raise LLMError(
                        "unreachable", f"the TLS certificate of {self.base_url} is not trusted (LOCALAI_CA_FILE)"
                    ) from exc
                error = LLMError("unreachable", f"cannot connect to {self.base_url}")
                cause = exc
            else:
                if response.status_code < 400:
                    return response
                try:
                    body = await response.aread()
                except httpx.TransportError:
                    body = b""  # the status alone still says what went wrong
                finally:
                    await response.aclose()
                error = _status_error(response, body, model)
                cause = error
            retryable = error.code in ("unreachable", "timeout", "overloaded", "server")
            if not retryable or attempt >= self.retries:
                raise error from cause
            delay = self.backoff * (2**attempt)
            if error.retry_after is not None:
                delay = min(error.retry_after, MAX_RETRY_AFTER)
            attempt += 1
            log.info("LocalAI %s, retry %d/%d in %.1fs", error.code, attempt, self.retries, delay)
            await asyncio.sleep(delay)

    async def rerank(self, model: str, query: str, documents: list[str]) -> list[tuple[int, float]]:
        """POST /v1/rerank (LocalAI/Jina shape): (document index, relevance score), best first."""
        body = {"model": model, "query": query, "documents": documents, "top_n": len(documents)}
        response = await self._request("POST", "/v1/rerank", body, model=model)
        try:
            results = response.json()["results"]
            scored = [(int(r["index"]), float(r["relevance_score"])) for r in results]
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMError("malformed", "the reply is not a rerank result list") from exc
        if any(not 0 <= index < len(documents) for index, _ in scored):
            raise LLMError("malformed", "the rerank reply names a document that was not sent")
        return sorted(scored, key=lambda item: -item[1])
