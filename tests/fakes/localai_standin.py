"""LocalAI stand-in: a real loopback OpenAI-compatible HTTP server with fault injection."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.standin_vectors import EMBED_DIM, context_reply, document_text, embedding_of, rerank_score

FAULTS = ("none", "http500", "http503", "error_frame", "drop", "hang", "hang_before", "malformed", "fail_first_n")
# Faults of POST /v1/embeddings (StandInConfig.embedding_fault): "down" closes the connection without a reply.
EMBEDDING_FAULTS = ("none", "down", "http500", "http503", "malformed", "hang")
__all__ = ["EMBED_DIM", "embedding_of"]  # re-exported: tests compute the stand-in's vectors themselves
FILLER = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
]
REASONING = ["Thinking", " about", " it"]
HANG_SECONDS = 3600.0
_MARKER = re.compile(r"\[\[(\w+)(?:=(.*?))?\]\]", re.DOTALL)
_BUSY = {"error": {"message": "server busy", "type": "server_error"}}
# How Rubin's title requests begin (rubin_app/services/titles.py): a slow title model is simulated on these only.
TITLE_PROMPT = "Write a title of"


class _Dropped(Exception):
    """Raised inside a stream to make uvicorn close the TCP connection mid-body."""


def _quiet(record: logging.LogRecord) -> bool:
    """Log filter hiding uvicorn tracebacks caused by intentional drops and shutdown cancellations."""
    exc = record.exc_info[1] if record.exc_info else None
    excs = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
    return not any(isinstance(e, _Dropped | asyncio.CancelledError) for e in excs)


@dataclass
class StandInConfig:
    """Mutable server behaviour; tests may change it at any time."""

    models: list[str] = field(default_factory=lambda: ["standin-model", "standin-small"])
    tokens: int = 20
    ttft: float = 0.0
    token_rate: float = 0.0
    fault: str = "none"
    fail_first_n: int = 0
    api_key: str | None = None
    ready: bool = True
    models_fault: str = "none"  # "hang": GET /v1/models accepts and never answers (until the client goes away)
    title_delay: float = 0.0  # seconds added to every title request (a model slow to write titles)
    embedding_dim: int = EMBED_DIM  # length of every embedding (a text with [[dim=N]] gets N)
    embedding_fault: str = "none"  # one of EMBEDDING_FAULTS
    embedding_max_chars: int = 0  # a longer input gets 400 "input is too long" (0: no limit)
    echo_context: bool = False  # every answer is the context-echo answer (as if each question said [[echo_context]])


@dataclass
class RequestRecord:
    """What happened to one chat request."""

    model: str
    stream: bool
    fault: str
    status: int = 200
    outcome: str = "pending"  # pending | completed | cancelled | dropped | errors (= counter names)
    pieces_sent: int = 0
    title: bool = False  # a conversation-title request (TITLE_PROMPT), not an answer
    client_port: int = 0  # the client's port: requests on one kept-alive connection share it
    prefix: str = ""  # a continuation: the partial answer sent as the last (assistant) message


@dataclass
class _Plan:
    """Everything needed to answer one accepted chat request."""

    rec: RequestRecord
    pieces: list[str]
    finish: str
    ttft: float
    rate: float
    reasoning: bool
    usage: dict[str, int] | None
    cid: str
    created: int
    tool_call: dict[str, Any] | None = None  # asked by [[tool=name]] when the request offers tools

    def chunk(self, delta: dict[str, Any] | None, reason: str | None = None) -> str:
        """Encode a chat.completion.chunk frame (``delta=None`` gives the usage frame)."""
        obj: dict[str, Any] = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.rec.model,
            "choices": [],
        }
        if delta is None:
            obj["usage"] = self.usage
        else:
            obj["choices"].append({"index": 0, "delta": delta, "finish_reason": reason})
        return _sse(obj)


def _text(content: Any) -> str:
    """Flatten OpenAI message content (string or list of parts) to text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """Return the text of the last user message (markers included)."""
    for msg in reversed(messages):
        if msg.get("role") == "user":
            return _text(msg.get("content"))
    return ""


def is_title_request(messages: list[dict[str, Any]]) -> bool:
    """True for Rubin's request for a conversation title (its prompt quotes the question, markers included)."""
    return last_user_text(messages).startswith(TITLE_PROMPT)


def parse_markers(text: str) -> dict[str, str]:
    """Extract ``[[name=value]]`` / ``[[name]]`` markers from a message."""
    return {m.group(1): (m.group(2) if m.group(2) is not None else "") for m in _MARKER.finditer(text)}


def build_pieces(
    messages: list[dict[str, Any]], max_tokens: int | None = None, tokens: int = 20, echo_context: bool = False
) -> tuple[list[str], str]:
    """Return the reply pieces (one SSE delta each) and the finish reason."""
    if messages and messages[-1].get("role") == "assistant":
        return _continuation(messages, max_tokens, tokens)
    text = last_user_text(messages)
    marks = parse_markers(text)
    if ("echo_context" in marks or echo_context) and "reply" not in marks and "reply_json" not in marks:
        # Which numbered passages ([n] at a line's start) the request carried, as citations: "See [1] and [2]."
        marks["reply"] = context_reply([_text(m.get("content")) for m in messages])
    if "reply" in marks or "reply_json" in marks:
        # reply_json: the value is the body of a JSON string, so a test can make the model send characters a
        # user cannot (``[[reply_json=a\\u0000b\\ud800c]]`` streams a NUL and a lone surrogate).
        reply = marks["reply"] if "reply" in marks else json.loads('"' + marks["reply_json"] + '"')
        pieces = [reply[i : i + 4] for i in range(0, len(reply), 4)]
    else:
        pieces = ["Echo:"] + [" " + w for w in _MARKER.sub(" ", text).split()]
        if "tokens" in marks:
            pieces = pieces[: int(marks["tokens"])]
        target = int(marks["tokens"]) if "tokens" in marks else (max_tokens if max_tokens is not None else tokens)
        pieces += [" " + FILLER[i % len(FILLER)] for i in range(max(0, target - len(pieces)))]
    if max_tokens is not None and len(pieces) > max_tokens:
        return pieces[:max_tokens], "length"
    return pieces, "stop"


def _continuation(messages: list[dict[str, Any]], max_tokens: int | None, tokens: int) -> tuple[list[str], str]:
    """A last assistant message is a prefix to continue (as llama.cpp's server and vLLM do): the rest of the reply
    the conversation before it gets, from where the prefix ends (the whole reply if it does not start with it)."""
    prefix = _text(messages[-1].get("content"))
    full, finish = build_pieces(messages[:-1], None, tokens)
    if not "".join(full).startswith(prefix):
        rest = full
    else:
        rest, seen = [], 0
        for piece in full:
            if seen + len(piece) > len(prefix):
                rest.append(piece[max(0, len(prefix) - seen) :])
            seen += len(piece)
    if max_tokens is not None and len(rest) > max_tokens:
        return rest[:max_tokens], "length"
    return rest, finish


def expected_reply(messages: list[dict[str, Any]], max_tokens: int | None = None, tokens: int = 20) -> str:
    """Return the exact full reply text the stand-in produces for these inputs."""
    return "".join(build_pieces(messages, max_tokens, tokens)[0])


def reply_to(question: str, tokens: int = 20) -> str:
    """The whole reply the stand-in gives to a one-message chat asking `question`."""
    return expected_reply([{"role": "user", "content": question}], tokens=tokens)


def tool_call_of(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The tool call a `[[tool=name]]` marker asks for (arguments: {"query": the rest of the message}), or None."""
    text = last_user_text(messages)
    marks = parse_markers(text)
    if "tool" not in marks:
        return None
    arguments = json.dumps({"query": _MARKER.sub(" ", text).strip()})
    return {"id": "call_standin1", "type": "function", "function": {"name": marks["tool"], "arguments": arguments}}


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Count words over all messages (the stand-in's prompt token count)."""
    return sum(len(_text(m.get("content")).split()) for m in messages)


def _error(status: int, message: str, etype: str, headers: dict[str, str] | None = None, code: bool = True) -> Response:
    """Build a LocalAI-style JSON error response."""
    body: dict[str, Any] = {"message": message, "type": etype}
    if code:
        body["code"] = status
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _tool_deltas(call: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool call as OpenAI streams it: the name first, then the arguments in pieces of 8 characters."""
    head = {
        "index": 0,
        "id": call["id"],
        "type": "function",
        "function": {"name": call["function"]["name"], "arguments": ""},
    }
    arguments = call["function"]["arguments"]
    pieces = [arguments[i : i + 8] for i in range(0, len(arguments), 8)]
    return [{"tool_calls": [head]}, *({"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces)]


def _sse(obj: Any) -> str:
    """Encode one SSE data frame."""
    return "data: " + (obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))) + "\n\n"


class StandIn:
    """LocalAI stand-in server running uvicorn on loopback in a background thread."""

    def __init__(
        self,
        config: StandInConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """Create the server (not started); `tls`: (certificate, key) PEM files to serve HTTPS."""
        self.config = config or StandInConfig()
        self.host, self.port = host, port
        self.tls = tls
        self.reset()
        self.app = Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/rerank", self._rerank, methods=["POST"]),
            ]
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        """Zero counters, records and the fail_first_n budget (`active_streams` is a gauge: kept)."""
        self.active_streams = getattr(self, "active_streams", 0)
        self.requests = self.cancelled = self.completed = self.dropped = self.errors = 0
        self.model_requests = 0  # GET /v1/models
        self.embedding_requests = 0  # POST /v1/embeddings
        self.embedding_inputs: list[list[str]] = []  # the texts of each embeddings request, in order
        self.rerank_requests = 0  # POST /v1/rerank
        self.last_rerank_json: dict[str, Any] | None = None
        self.failed_first = 0
        self.records: list[RequestRecord] = []
        self.last_request_json: dict[str, Any] | None = None
        self.last_answer_json: dict[str, Any] | None = None  # the last request that was not a title request
        self.last_headers: dict[str, str] = {}

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT, or https:// with `tls` (no /v1 suffix)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def _make_server(self) -> tuple[uvicorn.Server, socket.socket]:
        """Bind the listening socket and build the uvicorn server."""
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only for sockets that say they are TCP (with
        # protocol 0 every write on a kept-alive connection could wait 40 ms for the client's delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        tls = {"ssl_certfile": str(self.tls[0]), "ssl_keyfile": str(self.tls[1])} if self.tls else {}
        cfg = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1, http="h11", loop="asyncio",
            **tls,
        )  # fmt: skip
        err_logger = logging.getLogger("uvicorn.error")
        if _quiet not in err_logger.filters:
            err_logger.addFilter(_quiet)
        return uvicorn.Server(cfg), sock

    def start(self, timeout: float = 5.0) -> Self:
        """Start serving in a background thread and wait until it accepts connections."""
        server, sock = self._make_server()
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="standin")
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("LocalAI stand-in failed to start")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Run in the foreground (blocking) until interrupted."""
        server, sock = self._make_server()
        self._server = server
        server.run(sockets=[sock])

    def stop(self) -> None:
        """Stop the server quickly, abandoning hung streams."""
        if self._server is not None:
            self._server.should_exit = self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        """Start on context entry."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop on context exit."""
        self.stop()

    def _auth_error(self, request: Request) -> Response | None:
        """Return a 401 response when an API key is configured and missing/wrong."""
        key = self.config.api_key
        if key and request.headers.get("authorization") != f"Bearer {key}":
            return _error(
                401,
                "An authentication key is required",
                "invalid_request_error",
                headers={"WWW-Authenticate": "Bearer"},
                code=False,
            )
        return None

    async def _models(self, request: Request) -> Response:
        """GET /v1/models."""
        self.model_requests += 1
        if (denied := self._auth_error(request)) is not None:
            return denied
        if self.config.models_fault == "hang":
            await self._wait(request, HANG_SECONDS)
            return Response(status_code=499)
        data = [{"id": m, "object": "model", "owned_by": "standin"} for m in self.config.models]
        return JSONResponse({"object": "list", "data": data})

    async def _embeddings(self, request: Request) -> Response:
        """POST /v1/embeddings: a deterministic, meaningful vector per input (tests/fakes/standin_vectors.py)."""
        self.embedding_requests += 1
        if (denied := self._auth_error(request)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid JSON body", "invalid_request_error")
        model, inputs = body.get("model"), body.get("input")
        texts = [str(t) for t in ([inputs] if isinstance(inputs, str) else list(inputs or []))]
        self.embedding_inputs.append(texts)
        if model not in self.config.models:
            return _error(404, f"model '{model}' not found", "invalid_request_error")
        fault = await self._embedding_fault(request, texts)
        if fault is not None:
            return fault
        data = [{"object": "embedding", "index": i, "embedding": self._vector(t)} for i, t in enumerate(texts)]
        words = sum(len(t.split()) for t in texts)
        return JSONResponse(
            {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": words, "total_tokens": words}}
        )

    def _vector(self, text: str) -> list[float]:
        """One input's embedding: config.embedding_dim long, or N with a [[dim=N]] marker in the text."""
        dim = int(parse_markers(text).get("dim") or self.config.embedding_dim)
        return embedding_of(_MARKER.sub(" ", text), dim)

    async def _embedding_fault(self, request: Request, texts: list[str]) -> Response | None:
        """The configured embeddings fault's response, or None to answer normally."""
        fault, limit = self.config.embedding_fault, self.config.embedding_max_chars
        if fault == "down":

            async def nothing() -> AsyncIterator[bytes]:
                raise _Dropped()
                yield b""  # pragma: no cover - makes this an async generator

            return StreamingResponse(nothing(), media_type="application/json")
        if fault == "http500":
            return _error(500, "embedding backend crashed", "server_error")
        if fault == "http503":
            return JSONResponse(_BUSY, status_code=503, headers={"Retry-After": "0"})
        if fault == "malformed":
            return JSONResponse({"object": "list", "items": []})
        if fault == "hang":
            await self._wait(request, HANG_SECONDS)
            return Response(status_code=499)
        if limit and any(len(t) > limit for t in texts):
            return _error(400, f"input is too long: at most {limit} characters", "invalid_request_error")
        return None

    async def _rerank(self, request: Request) -> Response:
        """POST /v1/rerank (Jina / LocalAI shape): documents scored by the share of the query's words they have."""
        self.rerank_requests += 1
        if (denied := self._auth_error(request)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid JSON body", "invalid_request_error")
        self.last_rerank_json = body
        query, documents = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not isinstance(documents, list):
            return _error(400, "query (text) and documents (list) are required", "invalid_request_error")
        if body.get("model") not in self.config.models:
            return _error(404, f"model '{body.get('model')}' not found", "invalid_request_error")
        texts = [document_text(d) for d in documents]
        scored = sorted(((rerank_score(query, t), i) for i, t in enumerate(texts)), key=lambda p: (-p[0], p[1]))
        top_n = body.get("top_n") or len(texts)
        results = [{"index": i, "relevance_score": score, "document": {"text": texts[i]}} for score, i in scored]
        words = len(query.split()) + sum(len(t.split()) for t in texts)
        return JSONResponse({"model": body["model"], "results": results[:top_n], "usage": {"total_tokens": words}})

    async def _readyz(self, request: Request) -> Response:
        """GET /readyz."""
        if self.config.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, status_code=503)

    async def _healthz(self, request: Request) -> Response:
        """GET /healthz."""
        return JSONResponse({"status": "ok"})

    async def _wait(self, request: Request, seconds: float) -> bool:
        """Sleep up to ``seconds`` in small slices; return True if the client disconnected."""
        end = time.monotonic() + seconds
        while True:
            if await request.is_disconnected():
                return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, 0.05))

    async def _chat(self, request: Request) -> Response:
        """POST /v1/chat/completions (streaming and non-streaming)."""
        self.requests += 1
        self.last_headers = dict(request.headers)
        if (denied := self._auth_error(request)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid JSON body", "invalid_request_error")
        self.last_request_json = body
        cfg, messages = self.config, body.get("messages") or []
        marks = parse_markers(last_user_text(messages))
        continuing = bool(messages) and messages[-1].get("role") == "assistant"
        # A question's fault marker is a fault of its first request: a continuation of the cut answer (LocalAI "came
        # back") is served normally, unless the question also says [[refault]]. The configured fault applies always.
        fault = marks.get("fault", cfg.fault) if not continuing or "refault" in marks else cfg.fault
        rec = RequestRecord(body.get("model") or cfg.models[0], bool(body.get("stream")), fault)
        rec.client_port = request.client.port if request.client else 0
        rec.title = is_title_request(messages)
        if continuing:
            rec.prefix = _text(messages[-1].get("content"))
        if not rec.title:
            self.last_answer_json = body
        self.records.append(rec)
        early = self._early_fault(rec)
        if early is not None:
            return self._finish(rec, "errors", early)
        if rec.fault == "hang_before":
            await self._wait(request, HANG_SECONDS)
            return self._finish(rec, "cancelled", Response(status_code=499))
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        pieces, finish = build_pieces(messages, max_tokens, cfg.tokens, cfg.echo_context and not rec.title)
        p_tok = prompt_tokens(messages)
        usage = {"prompt_tokens": p_tok, "completion_tokens": len(pieces), "total_tokens": p_tok + len(pieces)}
        plan = _Plan(
            rec,
            pieces,
            finish,
            float(marks.get("ttft", cfg.ttft)),
            float(marks.get("rate", cfg.token_rate)),
            "reasoning" in marks,
            usage,
            f"chatcmpl-{uuid.uuid4().hex[:24]}",
            int(time.time()),
        )
        if body.get("tools"):
            plan.tool_call = tool_call_of(messages)
        if rec.title:  # a slow title model: config.title_delay, or [[title_delay=S]] in the quoted question
            plan.ttft += float(marks.get("title_delay", cfg.title_delay))
        if not rec.stream:
            return await self._complete(request, plan)
        if not (body.get("stream_options") or {}).get("include_usage"):
            plan.usage = None
        gen = self._stream(request, plan)
        return StreamingResponse(gen, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def _early_fault(self, rec: RequestRecord) -> Response | None:
        """Return an error response for failures that happen before any byte is streamed."""
        if rec.model not in self.config.models:
            return _error(404, f"model '{rec.model}' not found", "invalid_request_error")
        if rec.fault == "http500":
            return _error(500, "internal server error", "server_error")
        if rec.fault == "http503":
            return JSONResponse(_BUSY, status_code=503, headers={"Retry-After": "2"})
        if rec.fault == "fail_first_n" and self.failed_first < self.config.fail_first_n:
            self.failed_first += 1
            return JSONResponse(_BUSY, status_code=503, headers={"Retry-After": "0"})
        return None

    def _finish(self, rec: RequestRecord, outcome: str, response: Response) -> Response:
        """Record a non-streaming outcome, bump its counter and pass the response through."""
        rec.outcome, rec.status = outcome, response.status_code
        setattr(self, outcome, getattr(self, outcome) + 1)
        return response

    async def _complete(self, request: Request, plan: _Plan) -> Response:
        """Build a non-streaming chat completion honouring timing and faults."""
        rec = plan.rec
        delay = plan.ttft + (max(0, len(plan.pieces) - 1) / plan.rate if plan.rate > 0 else 0.0)
        if await self._wait(request, HANG_SECONDS if rec.fault == "hang" else delay):
            return self._finish(rec, "cancelled", Response(status_code=499))
        if rec.fault == "error_frame":
            return self._finish(rec, "errors", _error(500, "backend crashed", "server_error"))
        if rec.fault == "malformed":
            return self._finish(rec, "completed", Response("{not json", media_type="application/json"))
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.pieces)}
        if plan.reasoning:
            message["reasoning"] = "".join(REASONING)
        choice = {"index": 0, "message": message, "finish_reason": plan.finish}
        if plan.tool_call is not None:
            message.update(content=None, tool_calls=[plan.tool_call])
            choice["finish_reason"] = "tool_calls"
        payload = {
            "id": plan.cid,
            "object": "chat.completion",
            "created": plan.created,
            "model": rec.model,
            "choices": [choice],
            "usage": plan.usage,
        }
        if rec.fault == "drop":
            raw = json.dumps(payload).encode()

            async def half() -> AsyncIterator[bytes]:
                yield raw[: len(raw) // 2]
                raise _Dropped()

            return self._finish(rec, "dropped", StreamingResponse(half(), media_type="application/json"))
        rec.pieces_sent = len(plan.pieces)
        return self._finish(rec, "completed", JSONResponse(payload))

    async def _stream(self, request: Request, plan: _Plan) -> AsyncIterator[str]:
        """Yield LocalAI-style SSE frames, injecting the request's fault."""
        rec, pieces = plan.rec, plan.pieces
        self.active_streams += 1
        try:
            yield plan.chunk({"role": "assistant", "content": ""})
            if rec.fault == "hang":
                await asyncio.sleep(HANG_SECONDS)  # a client disconnect cancels this generator
                return
            cut = max(1, len(pieces) // 2) if rec.fault in ("error_frame", "drop") else len(pieces)
            bad_at = min(3, max(1, len(pieces) // 2)) if rec.fault == "malformed" else None
            deltas = [{"reasoning": r} for r in REASONING] if plan.reasoning else []
            n_reasoning = len(deltas)
            deltas += [{"content": p} for p in pieces[:cut]] if plan.tool_call is None else _tool_deltas(plan.tool_call)
            for i, delta in enumerate(deltas):
                # Inside a streaming response Starlette cancels the generator when the client leaves;
                # polling request.is_disconnected() here races Starlette's own listener (false positives).
                await asyncio.sleep(plan.ttft if i == 0 else (1.0 / plan.rate if plan.rate > 0 else 0.0))
                if i - n_reasoning == bad_at:
                    yield "data: {not json\n\n"
                yield plan.chunk(delta)
                rec.pieces_sent += "content" in delta
            if rec.fault == "drop":
                rec.outcome = "dropped"
                raise _Dropped()
            if rec.fault == "error_frame":
                yield _sse({"error": {"message": "backend crashed", "type": "server_error", "code": 500}})
            else:
                yield plan.chunk({}, "tool_calls" if plan.tool_call is not None else plan.finish)
                if plan.usage is not None:
                    yield plan.chunk(None)
            yield _sse("[DONE]")
            rec.outcome = "completed"
        finally:
            self.active_streams -= 1
            if rec.outcome == "pending":
                rec.outcome = "cancelled"
            setattr(self, rec.outcome, getattr(self, rec.outcome) + 1)


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in in the foreground (for benchmarks and manual runs)."""
    ap = argparse.ArgumentParser(description="LocalAI stand-in server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--rate", type=float, default=0.0, help="pieces per second (0 = unthrottled)")
    ap.add_argument("--ttft", type=float, default=0.0, help="seconds before the first content frame")
    ap.add_argument("--tokens", type=int, default=20, help="default reply length in pieces")
    ap.add_argument("--fault", default="none", choices=FAULTS)
    ap.add_argument("--fail-first-n", type=int, default=0)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--title-delay", type=float, default=0.0, help="seconds added to every title request")
    ap.add_argument("--models", default="standin-model,standin-small", help="comma-separated model ids")
    ap.add_argument("--embedding-dim", type=int, default=EMBED_DIM, help="length of every embedding")
    ap.add_argument("--echo-context", action="store_true", help="answer with the context passages' numbers")
    a = ap.parse_args(argv)
    cfg = StandInConfig(
        models=a.models.split(","),
        tokens=a.tokens,
        ttft=a.ttft,
        token_rate=a.rate,
        fault=a.fault,
        fail_first_n=a.fail_first_n,
        api_key=a.api_key,
        title_delay=a.title_delay,
        embedding_dim=a.embedding_dim,
        echo_context=a.echo_context,
    )
    StandIn(cfg, host=a.host, port=a.port).serve_forever()


if __name__ == "__main__":
    main()
