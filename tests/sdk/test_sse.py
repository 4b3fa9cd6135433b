"""The SDK's event-stream reading on its own: the SSE rules Rubin's stream relies on, unknown events skipped,
and a stream that ends before `done` raising instead of looking like a finished answer."""

from __future__ import annotations

import httpx
import pytest
from rubin_client import Delta, Done, EventStream, RubinConnectionError, Started
from rubin_client.events import SSEDecoder

STARTED = b'event: started\ndata: {"conversation_id":"c1","question_id":1,"answer_id":2}\n\n'
DONE = (
    b'event: done\ndata: {"conversation_id":"c1","question_id":1,"answer_id":2,"status":"error",'
    b'"error":"timeout","prompt_tokens":null,"completion_tokens":null}\n\n'
)


def stream_of(*chunks: bytes) -> EventStream:
    """An EventStream over a response whose body arrives in these chunks."""
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(chunks))
    return EventStream(response)


def test_the_decoder_follows_the_sse_rules() -> None:
    decoder = SSEDecoder()
    lines = [": a comment", "event: delta", "data: first", "data:second", "", "", "data: x", "id: 7", ""]
    assert [e for e in map(decoder.feed, lines) if e] == [("delta", "first\nsecond"), ("message", "x")]
    decoder.feed("data: unfinished")
    assert decoder.end() == ("message", "unfinished")


def test_events_split_across_chunks_and_crlf_lines_are_read_whole() -> None:
    body = STARTED + b'event: delta\r\ndata: {"content":"Hel"}\r\n\r\n' + b'event: delta\ndata: {"reasoning":"hm"}\n\n'
    body += b'event: future\ndata: {"what":"an event this client does not know"}\n\n' + DONE
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    with stream_of(*chunks) as stream:
        events = list(stream)
    assert events == [
        Started("c1", 1, 2), Delta(content="Hel"), Delta(reasoning="hm"),
        Done(status="error", error="timeout", prompt_tokens=None, completion_tokens=None, conversation_id="c1",
             question_id=1, answer_id=2),
    ]  # fmt: skip
    assert (stream.text, stream.reasoning, stream.conversation_id) == ("Hel", "hm", "c1")
    assert stream.done is not None and not stream.done.ok


def test_a_stream_cut_before_done_raises() -> None:
    stream = stream_of(STARTED, b'event: delta\ndata: {"content":"Hel"}\n\n')
    with pytest.raises(RubinConnectionError, match="before its 'done' event") as info:
        stream.until_done()
    assert info.value.code == "stream_cut" and stream.text == "Hel" and stream.done is None
