"""Knowledge in the chat, through the real pipeline (SQLite and PostgreSQL, the stand-in's embeddings): a document
uploaded and ingested, a question answered from it with numbered sources saved on the answer, nothing for an
off-topic question, and no way for another user to reach the passages, even by naming the base."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from rubin_app.knowledge import citations, service, uploads
from rubin_app.knowledge.models import FileStatus, KnowledgeFile
from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from tests.fakes.localai_standin import StandIn
from tests.services.helpers import new_user

MODEL = "standin-model"
GUIDE = (
    "# Rubies\n\nRubies are red because of chromium in the corundum crystal. The deepest red stones are called "
    "pigeon blood.\n\n# Sapphires\n\nSapphires are blue because of iron and titanium. Yellow sapphires exist too.\n\n"
    "# Care\n\nClean the stones with warm soapy water and a soft brush; never use an ultrasonic cleaner on "
    "fractured stones.\n"
)


async def _ingested_base(rt: Runtime, user_id: int, name: str = "Gems", text: str = GUIDE) -> int:
    """A base with one Markdown document, ingested by the runtime's own job (real extraction, index, embeddings)."""
    async with session_scope() as session:
        base = await service.create_base(session=session, user_id=user_id, name=name)
    assert base.id is not None

    async def content() -> AsyncIterator[bytes]:
        yield text.encode()

    row = await uploads.enqueue(
        scope=session_scope, settings=rt.settings, user_id=user_id, kb_id=base.id, filename="gems.md", content=content()
    )
    assert await rt.knowledge.run_once() == 1
    async with session_scope() as session:
        done = await session.get(KnowledgeFile, row.id)
    assert done is not None and done.status == FileStatus.ready, (done.error, done.error_detail) if done else None
    return base.id


@pytest.fixture
async def rt(make_runtime: Callable[..., Awaitable[Runtime]], standin: StandIn) -> Runtime:
    """A runtime whose embeddings come from the stand-in (as an instance with EMBEDDING_MODEL set would)."""
    return await make_runtime(embedding_model=MODEL)


async def _ask(rt: Runtime, user_id: int, text: str, knowledge: list[int] | str) -> chat_flow.Started:
    started = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text=text, model=MODEL, knowledge=knowledge
    )
    assert await started.run.wait_done(timeout=10)
    return started


async def test_an_answer_from_a_base_cites_its_passages(rt: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    kb = await _ingested_base(rt, user_id)
    started = await _ask(rt, user_id, "Why are rubies red? [[echo_context]]", [kb])
    assert started.run.status == MessageStatus.complete
    system = standin.last_request_json["messages"][0]
    assert system["role"] == "system" and "chromium in the corundum" in system["content"]
    assert "[1] gems.md" in system["content"] and "documents do not contain" in system["content"]
    assert started.run.text.startswith("See [1]")  # the stand-in cites what it was given
    async with session_scope() as session:
        answer = await session.get(type(started.messages[1]), started.messages[1].id)
    assert answer is not None
    sources, _ = citations.load(answer.annotations)
    assert sources and sources[0].filename == "gems.md" and "chromium" in sources[0].text
    assert sources[0].heading.startswith("Rubies")
    assert citations.cited(started.run.text, sources)[0] == 1
    # The chat keeps its choice: the next question (no knowledge named) is answered from the same base.
    follow = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=started.conversation.id, text="And sapphires? [[echo_context]]",
        model=MODEL,
    )  # fmt: skip
    assert await follow.run.wait_done(timeout=10)
    assert "iron and titanium" in standin.last_request_json["messages"][0]["content"]


async def test_an_off_topic_question_gets_no_passages(rt: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    kb = await _ingested_base(rt, user_id)
    started = await _ask(rt, user_id, "What is the boiling point of nitrogen? [[echo_context]]", [kb])
    system = standin.last_request_json["messages"][0]["content"]
    assert "nothing relevant was found" in system and "corundum" not in system
    assert started.run.text == "The documents do not contain the answer."
    async with session_scope() as session:
        answer = await session.get(type(started.messages[1]), started.messages[1].id)
    assert answer is not None and citations.load(answer.annotations) == ([], [])


async def test_another_users_base_is_never_searched(rt: Runtime, standin: StandIn) -> None:
    """B names A's base (a forged choice, or "all"): B's answer gets none of A's passages."""
    owner, other = await new_user(), await new_user()
    kb = await _ingested_base(rt, owner)
    for choice in ([kb], "all"):
        await _ask(rt, other, "Why are rubies red? [[echo_context]]", choice)
        sent = " ".join(m["content"] for m in standin.last_request_json["messages"])
        assert "corundum" not in sent and "gems.md" not in sent


async def test_all_my_knowledge_searches_every_base_of_the_user(rt: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    await _ingested_base(rt, user_id, "Gems")
    await _ingested_base(
        rt, user_id, "Metals", "# Gold\n\nGold does not rust; it is alloyed with copper for hardness.\n"
    )
    await _ask(rt, user_id, "Why does gold not rust? [[echo_context]]", "all")
    assert "alloyed with copper" in standin.last_request_json["messages"][0]["content"]


async def test_retrieval_failing_never_fails_the_answer(rt: Runtime, standin: StandIn) -> None:
    """The embedding server down at question time: the answer comes (from full-text search alone)."""
    user_id = await new_user()
    kb = await _ingested_base(rt, user_id)
    standin.config.embedding_fault = "http500"
    started = await _ask(rt, user_id, "Why are rubies red? [[echo_context]]", [kb])
    assert started.run.status == MessageStatus.complete
    assert "chromium in the corundum" in standin.last_request_json["messages"][0]["content"]
