"""Assistants: create, edit, share, resolve by model name, export/import — each user sees only theirs and the
shared ones, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from rubin_app.assistants import io
from rubin_app.assistants import service as assistants
from rubin_app.assistants.apply import apply_to_request, budget_for, params_for, system_prompt_for
from rubin_app.llm.types import ChatMessage, ChatRequest, Params
from rubin_app.models import Role
from rubin_app.services.chats import InputError
from tests.factories import make_user


def spec(name: str = "Translator", **fields: object) -> io.AssistantSpec:
    values: dict[str, object] = {"name": name, "base_model": "standin-model", "system_prompt": "Translate to French."}
    return io.spec_of({**values, **fields})


async def test_create_edit_delete_and_the_model_name_stays(scope) -> None:
    async with scope() as session:
        user = await make_user(session)
        a = await assistants.create_assistant(
            session=session, user_id=user.id, spec=spec(temperature=0.2, starters=["Bonjour?", "  "], emoji="🇫🇷")
        )
        assert a.model_name == "asst:translator" and a.shared is False
        assert assistants.starters_of(a) == ["Bonjour?"]
        b = await assistants.create_assistant(session=session, user_id=user.id, spec=spec())
        assert b.model_name == "asst:translator-2"
        ru = await assistants.create_assistant(session=session, user_id=user.id, spec=spec("Мой Помощник!"))
        assert ru.model_name == "asst:мой-помощник"
    async with scope() as session:
        changed = await assistants.update_assistant(
            session=session, user_id=user.id, assistant_id=a.id, spec=spec("Traducteur", max_tokens=50)
        )
        assert (changed.name, changed.model_name, changed.max_tokens) == ("Traducteur", "asst:translator", 50)
        found = await assistants.resolve_assistant(session=session, user_id=user.id, name="asst:translator")
        assert found is not None and found.name == "Traducteur"
        assert await assistants.resolve_assistant(session=session, user_id=user.id, name="translator") is None
        await assistants.delete_assistant(session=session, user_id=user.id, assistant_id=b.id)
    async with scope() as session:
        names = [x.name for x in await assistants.list_assistants(session=session, user_id=user.id)]
        assert names == ["Traducteur", "Мой Помощник!"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"base_model": ""}, "base_model"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"starters": ["x"] * 7}, "starters"),
        ({"system_prompt": "a\x00b"}, "system_prompt"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as caught:
        spec(**fields)
    assert caught.value.code == "bad_assistant" and caught.value.params["field"] == field


async def test_isolation_and_sharing(scope) -> None:
    async with scope() as session:
        alice, bob = await make_user(session), await make_user(session)
        admin = await make_user(session)
        admin.role = Role.admin
        session.add(admin)
        private = await assistants.create_assistant(session=session, user_id=alice.id, spec=spec("Secret helper"))
        published = await assistants.create_assistant(session=session, user_id=admin.id, spec=spec("Company helper"))
    async with scope() as session:
        # Bob sees nothing of Alice's: not listed, not by id, not by model name, not changeable.
        assert await assistants.list_assistants(session=session, user_id=bob.id) == []
        assert await assistants.get_assistant(session=session, user_id=bob.id, assistant_id=private.id) is None
        assert await assistants.resolve_assistant(session=session, user_id=bob.id, name=private.model_name) is None
        for call in (
            assistants.update_assistant(session=session, user_id=bob.id, assistant_id=private.id, spec=spec("Mine")),
            assistants.delete_assistant(session=session, user_id=bob.id, assistant_id=private.id),
        ):
            with pytest.raises(InputError, match="assistant_not_found"):
                await call
        # Only admins share.
        with pytest.raises(InputError, match="admin_only"):
            await assistants.set_shared(session=session, user_id=alice.id, assistant_id=private.id, shared=True)
        await assistants.set_shared(session=session, user_id=admin.id, assistant_id=published.id, shared=True)
    async with scope() as session:
        listed = await assistants.list_assistants(session=session, user_id=bob.id)
        assert [a.name for a in listed] == ["Company helper"]
        used = await assistants.resolve_assistant(session=session, user_id=bob.id, name="asst:company-helper")
        assert used is not None and used.id == published.id
        # Everyone may use a shared assistant, only its owner may change it.
        with pytest.raises(InputError, match="assistant_not_found"):
            await assistants.update_assistant(session=session, user_id=bob.id, assistant_id=published.id, spec=spec())
        # A user's own assistant of the same name wins over the shared one (and the list shows one of them).
        own = await assistants.create_assistant(session=session, user_id=bob.id, spec=spec("Company helper"))
    async with scope() as session:
        used = await assistants.resolve_assistant(session=session, user_id=bob.id, name="asst:company-helper")
        assert used is not None and used.id == own.id
        assert [a.id for a in await assistants.list_assistants(session=session, user_id=bob.id)] == [own.id]


async def test_export_import_round_trip(scope) -> None:
    async with scope() as session:
        alice, bob = await make_user(session), await make_user(session)
        made = await assistants.create_assistant(
            session=session, user_id=alice.id,
            spec=spec("Poet", emoji="✒️", description="Rhymes", temperature=1.1, max_tokens=300, context_budget=900,
                      starters=["A haiku about rain"], knowledge_ids=[3, 1]),
        )  # fmt: skip
        exported = io.dumps([assistants.spec_from(made)])
    doc = json.loads(exported)
    assert doc["format"] == "rubin.assistants" and doc["version"] == 1 and "knowledge_ids" not in doc["assistants"][0]
    async with scope() as session:
        [copy] = await assistants.import_assistants(session=session, user_id=bob.id, specs=io.parse_document(exported))
    assert copy.owner_id == bob.id and copy.shared is False
    assert assistants.spec_from(copy).model_dump() == assistants.spec_from(made).model_dump()
    assert assistants.knowledge_of(copy) == []  # knowledge belongs to this instance's users: not carried over


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a"),
        ('{"format": "other", "version": 1, "assistants": []}', "not a"),
        ('{"format": "rubin.assistants", "version": 2, "assistants": []}', "version 2"),
        ('{"format": "rubin.assistants", "version": 1, "assistants": []}', "no assistants"),
        ('{"format": "rubin.assistants", "version": 1, "assistants": ["x"]}', "assistants.0 is not an object"),
        ('{"format": "rubin.assistants", "version": 1, "assistants": [{"name": "A"}]}', "assistants.0.base_model"),
        ('{"format": "rubin.assistants", "version": 1, "assistants": [{"name": "A", "base_model": "m", '
         '"temperature": "hot"}]}', "assistants.0.temperature"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        io.parse_document(raw)
    assert caught.value.code == "bad_assistant_file" and reason in str(caught.value.params["reason"])


def test_one_assistant_object_alone_is_accepted_and_a_huge_file_is_not() -> None:
    [one] = io.parse_document('{"name": "Solo", "base_model": "m"}')
    assert one.name == "Solo"
    with pytest.raises(InputError, match="bad_assistant_file"):
        io.parse_document(b" " * (io.MAX_FILE_BYTES + 1))


def test_an_assistant_shapes_the_request() -> None:
    from rubin_app.assistants.models import Assistant

    a = Assistant(owner_id=1, slug="t", name="T", base_model="base", system_prompt="Be brief.", temperature=0.3,
                  max_tokens=64, context_budget=500)  # fmt: skip
    asked = ChatRequest(model="asst:t", messages=[ChatMessage(role="user", content="hi")], params=Params(max_tokens=10))
    sent = apply_to_request(asked, a, extra_system="About me: a cat.")
    assert sent.model == "base"
    assert [m.role for m in sent.messages] == ["system", "user"]
    assert sent.messages[0].content == "Be brief.\n\nAbout me: a cat."
    assert (sent.params.temperature, sent.params.max_tokens) == (0.3, 10)  # the caller's own value wins
    assert system_prompt_for(a, "default") == "Be brief." and system_prompt_for(None, "default") == "default"
    assert params_for(a, Params(temperature=1.0)).temperature == 0.3
    assert budget_for(a, 3000) == 500 and budget_for(None, 3000) == 3000


async def test_chat_setup_puts_assistant_instructions_and_memories_together(scope, standin) -> None:
    from rubin_app.assistants.chat import chat_setup
    from rubin_app.llm.client import LLMClient
    from rubin_app.memory import instructions
    from rubin_app.memory import service as memories
    from rubin_app.services.context import Turn, build_context

    async with scope() as session:
        alice, bob = await make_user(session), await make_user(session)
        await assistants.create_assistant(
            session=session, user_id=alice.id, spec=spec("Pirate", system_prompt="Talk like a pirate.", temperature=0.4,
                                                         context_budget=800, knowledge_ids=[7]),
        )  # fmt: skip
        await instructions.set_instructions(session=session, user_id=alice.id, about="I am a sailor.", style="")
        await memories.add_memory(session=session, user_id=alice.id, text="Owns a boat called Mary")
    common = {"default_system": "You are Rubin.", "base_params": Params(max_tokens=100), "default_budget": 3000}
    async with scope() as session:
        setup = await chat_setup(session=session, user_id=alice.id, model="asst:pirate", query="my boat", **common)
        plain = await chat_setup(session=session, user_id=alice.id, model="standin-model", query="hi", temporary=True,
                                 **common)  # fmt: skip
        for who, name in ((alice.id, "asst:nobody"), (bob.id, "asst:pirate")):
            with pytest.raises(InputError, match="unknown_model"):
                await chat_setup(session=session, user_id=who, model=name, query="x", **common)
    assert (setup.model, setup.budget, setup.knowledge_ids) == ("standin-model", 800, [7])
    assert (setup.params.temperature, setup.params.max_tokens) == (0.4, 100)
    assert setup.system_prompt.startswith("Talk like a pirate.\n\n") and "I am a sailor." in setup.system_prompt
    assert "- Owns a boat called Mary" in setup.system_prompt
    assert plain.model == "standin-model" and plain.system_prompt.startswith("You are Rubin.")
    assert "I am a sailor." in plain.system_prompt and "Mary" not in plain.system_prompt  # temporary: no memory
    # What the chat flow then sends reaches the model as set up.
    request = ChatRequest.of_turns(setup.model, build_context(setup.system_prompt, [Turn("user", "Ahoy")], 800),
                                   setup.params)  # fmt: skip
    client = LLMClient(standin.url, retries=0)
    try:
        await client.complete_request(request)
    finally:
        await client.aclose()
    sent = standin.last_answer_json
    assert sent is not None and sent["model"] == "standin-model" and sent["temperature"] == 0.4
    assert sent["messages"][0] == {"role": "system", "content": setup.system_prompt}
