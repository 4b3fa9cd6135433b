"""Custom instructions and long-term memory: the list (add, edit, delete, off switch), relevance within a budget
(embeddings or words), the system-prompt block, and proposals by the stand-in model — one user never sees
another's, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import AsyncIterator
from typing import Literal

import pytest

from rubin_app.llm.client import LLMClient
from rubin_app.memory import instructions, service
from rubin_app.memory.context import system_context
from rubin_app.memory.extract import parse_facts, propose_memories
from rubin_app.services.chats import InputError
from rubin_app.services.context import Turn, estimate_tokens
from tests.factories import make_user
from tests.fakes.localai_standin import StandIn


class WordEmbedder:
    """A real (small) embedder: words hashed into 64 dimensions, L2-normalised; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def embed(self, texts: list[str], *, kind: Literal["query", "document"] = "document") -> list[list[float]]:
        self.calls.append((kind, len(texts)))
        out = []
        for text in texts:
            vector = [0.0] * 64
            for word in re.findall(r"\w+", text.casefold()):
                vector[hashlib.sha256(word[:5].encode()).digest()[0] % 64] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            out.append([x / norm for x in vector])
        return out


class BrokenEmbedder:
    """An embedder whose server is down."""

    async def embed(self, texts: list[str], *, kind: Literal["query", "document"] = "document") -> list[list[float]]:
        raise ConnectionError("embedding server down")


@pytest.fixture
async def llm(standin: StandIn) -> AsyncIterator[LLMClient]:
    client = LLMClient(standin.url, connect_timeout=2.0, read_timeout=5.0, retries=0, backoff=0.01)
    yield client
    await client.aclose()


async def test_the_list_add_edit_switch_delete_and_isolation(scope) -> None:
    async with scope() as session:
        alice, bob = await make_user(session), await make_user(session)
        tea = await service.add_memory(session=session, user_id=alice.id, text="  Likes\tgreen   tea ")
        await service.add_memory(session=session, user_id=alice.id, text="Lives in Kazan")
        assert tea.text == "Likes green tea"
        with pytest.raises(InputError, match="memory_exists"):
            await service.add_memory(session=session, user_id=alice.id, text="likes green tea!")
        for bad, code in (("   ", "empty_memory"), ("x" * 501, "memory_too_long"), ("a\x00", "bad_characters")):
            with pytest.raises(InputError, match=code):
                await service.add_memory(session=session, user_id=alice.id, text=bad)
    async with scope() as session:
        assert await service.list_memories(session=session, user_id=bob.id) == []
        for call in (
            service.update_memory(session=session, user_id=bob.id, memory_id=tea.id, text="Mine now"),
            service.delete_memory(session=session, user_id=bob.id, memory_id=tea.id),
        ):
            with pytest.raises(InputError, match="memory_not_found"):
                await call
        assert await service.delete_memories(session=session, user_id=bob.id, memory_ids=[tea.id]) == 0
        with pytest.raises(InputError, match="memory_exists"):
            await service.update_memory(session=session, user_id=alice.id, memory_id=tea.id, text="lives in kazan")
        edited = await service.update_memory(session=session, user_id=alice.id, memory_id=tea.id, text="Likes oolong")
        assert edited.text == "Likes oolong"
        await service.update_memory(session=session, user_id=alice.id, memory_id=tea.id, enabled=False)
    async with scope() as session:
        assert [m.text for m in await service.list_memories(session=session, user_id=alice.id)] == [
            "Lives in Kazan", "Likes oolong"
        ]  # fmt: skip
        # A switched-off memory is kept but not used.
        used = await service.relevant_memories(
            session=session, user_id=alice.id, query="tea", embedder=None, budget_tokens=500
        )
        assert used == ["Lives in Kazan"]
        gone = await service.delete_memory(session=session, user_id=alice.id, memory_id=tea.id)
        assert gone.text == "Likes oolong"
    async with scope() as session:
        assert len(await service.list_memories(session=session, user_id=alice.id)) == 1


async def test_relevance_by_words_within_the_budget(scope) -> None:
    facts = ["Has a dog named Rex", "Works as a nurse in Kazan", "Prefers short answers", "Любит зелёный чай"]
    async with scope() as session:
        user = await make_user(session)
        for fact in facts:
            await service.add_memory(session=session, user_id=user.id, text=fact)
    async with scope() as session:
        one = estimate_tokens(facts[1])
        top = await service.relevant_memories(
            session=session, user_id=user.id, query="what shifts do nurses in Kazan work?", embedder=None,
            budget_tokens=one,
        )  # fmt: skip
        assert top == ["Works as a nurse in Kazan"]
        ru = await service.relevant_memories(
            session=session, user_id=user.id, query="Какой чай мне заварить?", embedder=None, budget_tokens=12
        )
        assert ru == ["Любит зелёный чай"]
        everything = await service.relevant_memories(
            session=session, user_id=user.id, query="hello", embedder=None, budget_tokens=1000
        )
        assert sorted(everything) == sorted(facts)
        assert await service.relevant_memories(
            session=session, user_id=user.id, query="hello", embedder=None, budget_tokens=0
        ) == []  # fmt: skip


async def test_relevance_by_embeddings_stores_them_and_falls_back_to_words(scope) -> None:
    embedder = WordEmbedder()
    async with scope() as session:
        user = await make_user(session)
        for fact in ["Has a dog named Rex", "Works as a nurse in Kazan", "Prefers short answers"]:
            await service.add_memory(session=session, user_id=user.id, text=fact)
    async with scope() as session:
        top = await service.relevant_memories(
            session=session, user_id=user.id, query="my dog Rex is ill", embedder=embedder, budget_tokens=12
        )
        assert top == ["Has a dog named Rex"]
        assert embedder.calls == [("query", 1), ("document", 3)]
    async with scope() as session:
        stored = await service.list_memories(session=session, user_id=user.id)
        assert all(m.embedding for m in stored)
        await service.relevant_memories(
            session=session, user_id=user.id, query="short answers please", embedder=embedder, budget_tokens=12
        )
        assert embedder.calls[-1] == ("query", 1)  # the memories' embeddings were reused
        fallback = await service.relevant_memories(
            session=session, user_id=user.id, query="a nurse in Kazan", embedder=BrokenEmbedder(), budget_tokens=12
        )
        assert fallback == ["Works as a nurse in Kazan"]


async def test_system_context_instructions_memories_temporary_and_the_switch(scope) -> None:
    async with scope() as session:
        alice, bob = await make_user(session), await make_user(session)
        await instructions.set_instructions(
            session=session, user_id=alice.id, about="I am a teacher.", style="Answer in bullet points."
        )
        await service.add_memory(session=session, user_id=alice.id, text="Teaches maths to teenagers")
    async with scope() as session:
        block = await system_context(
            session=session, user_id=alice.id, query="maths homework", embedder=None, temporary=False
        )
        assert "I am a teacher." in block and "Answer in bullet points." in block
        assert "- Teaches maths to teenagers" in block
        temporary = await system_context(
            session=session, user_id=alice.id, query="maths homework", embedder=None, temporary=True
        )
        assert "I am a teacher." in temporary and "Teaches maths" not in temporary
        nothing = await system_context(session=session, user_id=bob.id, query="maths", embedder=None, temporary=False)
        assert nothing == ""
        await instructions.set_memory_enabled(session=session, user_id=alice.id, enabled=False)
    async with scope() as session:
        off = await system_context(session=session, user_id=alice.id, query="maths", embedder=None, temporary=False)
        assert "Teaches maths" not in off and "I am a teacher." in off
        assert await service.save_proposed(session=session, user_id=alice.id, facts=["Has a cat"]) == []
        with pytest.raises(InputError, match="instructions_too_long"):
            await instructions.set_instructions(session=session, user_id=alice.id, about="x" * 1501, style="")
    async with scope() as session:
        assert await instructions.get_instructions(session=session, user_id=alice.id) == (
            "I am a teacher.",
            "Answer in bullet points.",
        )  # fmt: skip  (the refused change lost nothing)


@pytest.mark.parametrize(
    ("raw", "facts"),
    [
        ('["Lives in Kazan", "Has two cats"]', ["Lives in Kazan", "Has two cats"]),
        ('```json\n["Is vegetarian"]\n```', ["Is vegetarian"]),
        ('Here are the facts: ["Is vegetarian"] hope that helps', ["Is vegetarian"]),
        ("[]", []),
        ("Echo: You keep a short list of facts [] ...", []),
        ("I cannot help with that.", []),
        ('["unterminated', []),
        ('{"facts": ["Is vegetarian"]}', ["Is vegetarian"]),
        ('{"a": 1}', []),
        ('[1, null, {"a": 1}, "ok fact", "", "  ", "' + "x" * 201 + '"]', ["ok fact"]),
        ('["a\\u0000b", "Likes tea", "likes  TEA", "Knows Go", "Knows Rust", "Knows C"]', ["Knows Go", "Knows Rust",
                                                                                              "Knows C"]),
        ("x" * 70 + ' ["too far into the text"]', []),
    ],
)  # fmt: skip
def test_parse_facts_is_robust_to_junk(raw: str, facts: list[str]) -> None:
    assert parse_facts(raw, existing=["Likes tea"]) == facts


async def test_proposals_from_the_stand_in_model(llm: LLMClient, standin: StandIn, scope) -> None:
    turns = [
        Turn("user", 'I moved to Kazan last year [[reply=["Lives in Kazan", "Likes tea"] ]]'),
        Turn("assistant", "Welcome to Kazan!"),
    ]
    facts = await propose_memories(client=llm, model="standin-model", turns=turns, existing=["likes tea"])
    assert facts == ["Lives in Kazan"]
    asked = standin.last_request_json
    assert asked is not None and asked["max_tokens"] == 200
    prompt = asked["messages"][-1]["content"]
    assert "JSON array" in prompt and "- likes tea" in prompt and "user: I moved to Kazan" in prompt
    # The stand-in's usual answer (an echo of the prompt) proposes nothing; so does a failing server.
    assert await propose_memories(client=llm, model="standin-model", turns=[Turn("user", "I like jazz")]) == []
    assert await propose_memories(client=llm, model="standin-model", turns=[Turn("user", "x [[fault=http500]]")]) == []
    assert await propose_memories(client=llm, model="no-such-model", turns=[Turn("user", "I like jazz")]) == []
    assert await propose_memories(client=llm, model="standin-model", turns=[Turn("assistant", "Hi")]) == []
    async with scope() as session:
        user = await make_user(session)
        added = await service.save_proposed(session=session, user_id=user.id, facts=facts, conversation_id="c1")
        assert [(m.text, m.source_conversation_id) for m in added] == [("Lives in Kazan", "c1")]
        assert await service.save_proposed(session=session, user_id=user.id, facts=facts) == []  # known already
    async with scope() as session:  # "memory updated" — Undo
        assert await service.delete_memories(session=session, user_id=user.id, memory_ids=[added[0].id]) == 1
        assert await service.list_memories(session=session, user_id=user.id) == []


async def test_memories_and_instructions_are_ciphertext_in_the_database(runtime, db_url: str) -> None:
    from sqlalchemy import text

    from rubin_app.services.db import session_scope

    marker = "Ящерица-memory-7Q2"
    async with session_scope() as session:
        user = await make_user(session)
        await service.add_memory(session=session, user_id=user.id, text=f"Keeps a lizard called {marker}")
        await instructions.set_instructions(session=session, user_id=user.id, about=f"About {marker}", style=marker)
    async with session_scope(read_only=True) as session:
        raw = [str(r[0]) for r in (await session.exec(text("SELECT text FROM memories"))).all()]  # type: ignore[call-overload]
        raw += [
            str(r[0]) + str(r[1])
            for r in (await session.exec(text("SELECT about, style FROM user_personalisation"))).all()
        ]  # type: ignore[call-overload]
    assert raw and all(marker not in r and r.startswith("$rv1$") for r in raw)
    async with session_scope(read_only=True) as session:
        assert [m.text for m in await service.list_memories(session=session, user_id=user.id)] == [
            f"Keeps a lizard called {marker}"
        ]
        assert await instructions.get_instructions(session=session, user_id=user.id) == (f"About {marker}", marker)
        found = await service.relevant_memories(
            session=session, user_id=user.id, query="my lizard", embedder=None, budget_tokens=100
        )
        assert found == [f"Keeps a lizard called {marker}"]


async def test_the_account_export_holds_the_users_personal_data_only(scope) -> None:
    from rubin_app.assistants import io
    from rubin_app.assistants import service as assistants
    from rubin_app.services import export

    async with scope() as session:
        alice, bob = await make_user(session), await make_user(session)
        for who, fact in ((alice, "Alice likes tea"), (bob, "Bob likes coffee")):
            await service.add_memory(session=session, user_id=who.id, text=fact)
            await instructions.set_instructions(session=session, user_id=who.id, about=f"{fact}!", style="")
            await assistants.create_assistant(
                session=session, user_id=who.id, spec=io.spec_of({"name": f"{fact} bot", "base_model": "m"})
            )
    async with scope() as session:
        data = await export.export_data(session=session, user_id=alice.id)
    personal = data["personal"]
    assert personal["instructions"] == {"about": "Alice likes tea!", "style": ""} and personal["memory_enabled"]
    assert [m["text"] for m in personal["memories"]] == ["Alice likes tea"]
    assert [a.name for a in io.parse_document(json.dumps(personal["assistants"]))] == ["Alice likes tea bot"]
    assert "Bob" not in repr(data)


async def test_the_step_after_an_answer_saves_new_facts_unless_memory_is_off(
    llm: LLMClient, standin: StandIn, scope, db_url: str, app_env
) -> None:
    from rubin_app.memory.extract import remember_from_chat

    app_env(database_url=db_url)  # remember_from_chat opens its own sessions on the app's database
    async with scope() as session:
        user = await make_user(session)
        await service.add_memory(session=session, user_id=user.id, text="Lives in Kazan")
    turns = [Turn("user", 'I got a puppy [[reply=["Lives in Kazan", "Has a puppy"] ]]'), Turn("assistant", "Nice!")]
    added = await remember_from_chat(client=llm, model="standin-model", user_id=user.id, turns=turns,
                                     conversation_id="c9")  # fmt: skip
    assert [(m.text, m.source_conversation_id) for m in added] == [("Has a puppy", "c9")]
    assert "- Lives in Kazan" in standin.last_request_json["messages"][-1]["content"]  # told what is known
    async with scope() as session:
        await instructions.set_memory_enabled(session=session, user_id=user.id, enabled=False)
    asked = standin.requests
    assert await remember_from_chat(client=llm, model="standin-model", user_id=user.id, turns=turns) == []
    assert standin.requests == asked  # switched off: the model is not even asked
    async with scope() as session:
        assert len(await service.list_memories(session=session, user_id=user.id)) == 2


async def test_deleting_the_account_deletes_its_memories_instructions_and_assistants(scope) -> None:
    from sqlalchemy import text

    from rubin_app.assistants import io
    from rubin_app.assistants import service as assistants
    from rubin_app.services import accounts

    async with scope() as session:
        user, other = await make_user(session), await make_user(session)
        for who in (user, other):
            await service.add_memory(session=session, user_id=who.id, text="Likes tea")
            await instructions.set_instructions(session=session, user_id=who.id, about="Me", style="")
            spec = io.spec_of({"name": "Bot", "base_model": "m"})
            await assistants.create_assistant(session=session, user_id=who.id, spec=spec)
    async with scope() as session:
        await accounts.delete_account(session=session, user_id=user.id, actor_id=user.id)
    async with scope() as session:
        for table in ("memories", "user_personalisation", "assistants"):
            column = "owner_id" if table == "assistants" else "user_id"
            rows = (await session.exec(text(f"SELECT {column} FROM {table}"))).all()  # type: ignore[call-overload]
            assert [r[0] for r in rows] == [other.id], table
