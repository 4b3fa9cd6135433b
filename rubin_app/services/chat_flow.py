"""Chat use cases: send, regenerate, edit and resend. Each saves first, then starts the answer."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Literal, ParamSpec, overload

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.assistants.models import PREFIX as ASSISTANT_PREFIX
from rubin_app.generation.manager import EarlyStart
from rubin_app.generation.run import Run
from rubin_app.generation.sinks import Sink
from rubin_app.knowledge import citations
from rubin_app.knowledge.citations import Source
from rubin_app.llm.types import ChatRequest
from rubin_app.models import Conversation, Message, MessageRole, MessageStatus
from rubin_app.services import augment, chats, memory_step, send_keys, titles
from rubin_app.services.chats import InputError
from rubin_app.services.context import Turn, estimate_tokens
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime

HISTORY_PAGE = 100  # messages read at a time when building a chat's context

log = logging.getLogger(__name__)
P = ParamSpec("P")

# Work that follows an answer off its path (automatic titles): strong references until it ends.
_background: set[asyncio.Task[Any]] = set()


@dataclass
class Started:
    """What a use case created: the conversation, the new/changed messages and the live run.

    `title`: for a new conversation with TITLE_MODE=llm, the model's title, written after the answer in
    a background task of its own (its result is the saved title, or None). Nothing waits for it: the answer
    is finished, its concurrency slot free and the conversation listed with its provisional title (the
    first message's start) before it starts.
    """

    conversation: Conversation
    messages: list[Message]
    run: Run
    title: asyncio.Task[str | None] | None = None
    memory: asyncio.Task[list[dict[str, object]]] | None = None  # the memories the answer added (noted on it)


def _in_background(work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = asyncio.create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def check_model(rt: Runtime, model: str, *, user_id: int | None) -> str:
    """Validate a model name against every connection's merged list (when it is known) and the user's permissions
    (`model_not_allowed`; None: no user, e.g. an operator's check). No name: the default model the user may use."""
    allowed = await rt.permissions.get(user_id) if user_id is not None else None
    if not model:
        models = allowed.filter(await rt.router.get()) if allowed is not None else await rt.router.get()
        if not models:
            raise InputError("no_model")
        return rt.settings.default_model if rt.settings.default_model in models else models[0]
    if allowed is not None and not allowed.allows_model(model):
        raise InputError("model_not_allowed", model=model)
    models = await rt.router.get()
    if models and model not in models:
        models = await rt.router.get(refresh=True)
        if models and model not in models:
            raise InputError("unknown_model", model=model)
    return model


def request_for(rt: Runtime, prepared: augment.Prepared, history: Sequence[Message | chats.Turn]) -> ChatRequest:
    """The request the chat UI makes: the system prompt (assistant, instructions, memories, sources), the
    conversation's context within the budget, the settings' (and the assistant's) parameters."""
    turns = [
        Turn(role=m.role.value, content=m.content)
        for m in history
        if m.role in (MessageRole.user, MessageRole.assistant) and m.status != MessageStatus.streaming
    ]
    return prepared.request(turns)


async def prepare(
    rt: Runtime, *, user_id: int, model: str, question: str, knowledge: list[int] | str, temporary: bool = False
) -> augment.Prepared:
    """The assistant, instructions, memories and sources of an answer; its model checked against the user's."""
    prepared = await augment.prepare(
        rt, user_id=user_id, model=model, question=question, knowledge=knowledge, temporary=temporary
    )
    prepared.model = await check_model(rt, prepared.model, user_id=user_id)
    return prepared


async def _empty_answer(
    session: AsyncSession, user_id: int, conversation_id: str, model: str, sources: Sequence[Source] = ()
) -> Message:
    """The assistant row an answer streams into (with the numbered sources it is given)."""
    return await chats.create_message(
        session=session,
        user_id=user_id,
        conversation_id=conversation_id,
        role=MessageRole.assistant,
        model=model,
        status=MessageStatus.streaming,
        annotations=citations.dump(list(sources)),
    )


async def _start(
    rt: Runtime, conversation: Conversation, assistant: Message, history: Sequence[Message], slot: str | None,
    *, use_cache: bool, source: str = "ui", api_key_id: int | None = None, extra_sinks: Sequence[Sink] = (),
    key_ticket: str | None = None, prepared: augment.Prepared,
) -> Run:  # fmt: skip
    assert assistant.id is not None
    request = request_for(rt, prepared, history)
    key, replay = await rt.cache_policy.lookup(request, conversation.user_id)
    run = rt.generation.start(
        request,
        user_id=conversation.user_id,
        sinks=[*rt.sinks(rt.answer_writer()), *extra_sinks],
        conversation_id=conversation.id,
        message_id=assistant.id,
        cache_key=key,
        replay=replay if use_cache else None,
        slot=slot,
        source=source,
        api_key_id=api_key_id,
        key_ticket=key_ticket,
    )
    rt.relay.publish(run)
    return run


def _held_at_stop(
    send: Callable[Concatenate[Runtime, P], Awaitable[Started]],
) -> Callable[Concatenate[Runtime, P], Awaitable[Started]]:
    """A worker that stops waits (a little) for the sends under way to be saved, and hands their answers over."""

    @functools.wraps(send)
    async def counted(rt: Runtime, *args: P.args, **kwargs: P.kwargs) -> Started:
        with rt.generation.arriving():
            return await send(rt, *args, **kwargs)

    return counted


@_held_at_stop
async def send_message(
    rt: Runtime,
    *,
    user_id: int,
    conversation_id: str | None,
    text: str,
    model: str,
    ip: str = "",
    on_run: Callable[[Run], object] | None = None,
    source: str = "ui",
    api_key_id: int | None = None,
    extra_sinks: Sequence[Sink] = (),
    key_ticket: str | None = None,
    knowledge: list[int] | str | None = None,
    send_key: str | None = None,
) -> Started:
    """Save the user's message and an empty answer, then start generating it (within the user's limits).

    LocalAI is asked first and the rows are saved while it thinks: `on_run` gets the run as soon as the
    request is out, so a follower can stream the answer before the exchange is committed. If saving then
    fails, the run is discarded and this raises. `knowledge`: the bases to answer from (a list of ids or
    "all"), saved as the chat's choice; None keeps the chat's. `send_key`: the page's id for this send; when a
    question with it is saved already (the page sent it again after a reconnect, and the first send was saved
    meanwhile, maybe on another worker), this raises `send_keys.AlreadySent` and nothing is saved.
    """
    text = chats.check_message_text(text, rt.settings.max_message_chars)
    if model and not model.startswith(ASSISTANT_PREFIX):
        await check_model(rt, model, user_id=user_id)  # a refused model costs no retrieval (an assistant's: below)
    slot = await rt.admission.admit(user_id, ip)
    early: EarlyStart | None = None
    try:
        choice = knowledge if knowledge is not None else await _stored_knowledge(user_id, conversation_id)
        prepared = await prepare(rt, user_id=user_id, model=model, question=text, knowledge=choice)
        picked = model or prepared.model  # what the chat shows: an assistant's name, or the model
        history: Sequence[chats.Turn] = []
        if conversation_id:
            # On the path to the first token: one query that takes no write lock, of just the columns a
            # context needs, and that also says whether the conversation is the user's.
            async with session_scope(read_only=True) as session:
                history = await _recent_history(
                    rt, session, user_id, conversation_id, turns_only=True, budget=prepared.budget
                )
        pending_question = Message(role=MessageRole.user, content=text, user_id=user_id, conversation_id="")
        request = request_for(rt, prepared, [*history, pending_question])
        key, replay = await rt.cache_policy.lookup(request, user_id)
        writer = rt.answer_writer(committed=False)
        early = rt.generation.start_early(
            request, writer=writer, user_id=user_id, sinks=[*rt.sinks(writer), *extra_sinks],
            conversation_id=conversation_id or "", cache_key=key, replay=replay, slot=slot, source=source,
            api_key_id=api_key_id, key_ticket=key_ticket,
        )  # fmt: skip
        run = early.run
        if on_run is not None:
            on_run(run)
        try:
            conversation, question, answer = await _save_exchange(
                user_id, conversation_id, text, picked, prepared, knowledge, send_key
            )
        except IntegrityError as exc:  # the same send, repeated on another worker, was saved first
            if not (send_key and send_keys.is_conflict(exc)):
                raise
            async with session_scope(read_only=True) as session:
                raise send_keys.AlreadySent(await send_keys.conversation_of(session, user_id, send_key) or "") from None
        first = conversation.id != conversation_id
        assert answer.id is not None
        early.bind(message_id=answer.id, conversation_id=conversation.id)
    except BaseException:
        if early is not None:
            early.discard()  # its quota sink frees the slot
        elif slot:
            await rt.limiter.release(user_id, slot)
        raise
    early.committed()
    rt.relay.publish(run)
    rt.chat_changed(user_id=user_id, conversation_id=conversation.id)
    memory = _in_background(_memories_after(rt, run, text)) if prepared.memory and source == "ui" else None
    if memory is not None:
        run.after_tasks.append(memory)
    title = None
    if first and rt.settings.title_mode == "llm":
        title = _in_background(_title_after(rt, run, text))
        run.after_tasks.append(title)  # related work, for whoever wants all of it (tests); tabs never wait
    return Started(conversation=conversation, messages=[question, answer], run=run, title=title, memory=memory)


async def _save_exchange(
    user_id: int, conversation_id: str | None, text: str, picked: str, prepared: augment.Prepared,
    knowledge: list[int] | str | None, send_key: str | None,
) -> tuple[Conversation, Message, Message]:  # fmt: skip
    """Save the question and an empty answer (in a new conversation when there is none), in one transaction."""
    async with session_scope() as session:
        conversation = None
        if conversation_id:
            mine = await chats.get_conversation(session=session, user_id=user_id, conversation_id=conversation_id)
            if mine is None:
                raise InputError("conversation_not_found")
            conversation = mine
        if conversation is None:
            conversation = await chats.create_conversation(
                session=session, user_id=user_id, model=picked, title=titles.title_from_text(text)
            )
        if conversation.model != picked:
            conversation.model = picked
            session.add(conversation)
        if knowledge is not None and conversation.knowledge != augment.dump_knowledge(knowledge):
            conversation.knowledge = augment.dump_knowledge(knowledge)
            session.add(conversation)
        question = await chats.create_message(
            session=session, user_id=user_id, conversation_id=conversation.id, role=MessageRole.user, content=text,
            send_key=send_key,
        )  # fmt: skip
        answer = await _empty_answer(session, user_id, conversation.id, prepared.model, prepared.sources)
    return conversation, question, answer


async def _stored_knowledge(user_id: int, conversation_id: str | None) -> list[int] | str:
    """The knowledge choice saved with a chat (none for a new one or one that is not the user's)."""
    if not conversation_id:
        return []
    async with session_scope(read_only=True) as session:
        conversation = await chats.get_conversation(session=session, user_id=user_id, conversation_id=conversation_id)
    return augment.parse_knowledge(conversation.knowledge if conversation else "")


async def _memories_after(rt: Runtime, run: Run, question: str) -> list[dict[str, object]]:
    """Once the answer is done, let the chat's model propose memories; note them on the answer (Undo shows)."""
    await run.wait_done()
    if run.status != MessageStatus.complete or run.discarded or not run.message_id:
        return []
    try:
        return await memory_step.remember(
            rt, user_id=run.user_id, model=run.model, question=question, answer=run.text,
            conversation_id=run.conversation_id, message_id=run.message_id,
        )  # fmt: skip
    except Exception:
        log.exception("could not update memories after answer %s", run.message_id)
        return []


async def _title_after(rt: Runtime, run: Run, question: str) -> str | None:
    """Once the first answer is done, let the model title the conversation; the saved title, or None.

    Off the answer's path: the run is finished (saved, its slot free) before the model is asked, and a
    failure is only logged (the provisional title stays).
    """
    await run.wait_done()
    if run.status != MessageStatus.complete or run.discarded:
        return None
    try:
        client, upstream = rt.router.client_for(run.model)  # the connection that answered writes the title
        title = chats.clean_title(await titles.generate_title(client, upstream, question, run.text))
        if not title:  # nothing visible left (the model wrote only invisible characters): keep the first title
            return None
        async with session_scope() as session:
            conversation = await chats.update_conversation(
                session=session, user_id=run.user_id, conversation_id=run.conversation_id, title=title, auto_title=True
            )
    except Exception:
        log.exception("could not title conversation %s", run.conversation_id)
        return None
    if conversation is None or not conversation.title_is_auto:  # deleted meanwhile, or the user renamed it
        return None
    return conversation.title


async def _last_exchange(rt: Runtime, user_id: int, conversation_id: str) -> tuple[Conversation, list[Message]]:
    async with session_scope() as session:
        conversation = await chats.get_conversation(session=session, user_id=user_id, conversation_id=conversation_id)
        if conversation is None:
            raise InputError("conversation_not_found")
        history = await _recent_history(rt, session, user_id, conversation_id)
    return conversation, history


@overload
async def _recent_history(
    rt: Runtime,
    session: AsyncSession,
    user_id: int,
    conversation_id: str,
    *,
    turns_only: Literal[False] = False,
    budget: int | None = None,
) -> list[Message]: ...
@overload
async def _recent_history(
    rt: Runtime,
    session: AsyncSession,
    user_id: int,
    conversation_id: str,
    *,
    turns_only: Literal[True],
    budget: int | None = None,
) -> list[chats.Turn]: ...
async def _recent_history(
    rt: Runtime,
    session: AsyncSession,
    user_id: int,
    conversation_id: str,
    *,
    turns_only: bool = False,
    budget: int | None = None,
) -> list[Any]:
    """The newest messages, enough to fill the context budget: read a page at a time, from the end,
    until what was read outweighs the budget (a long chat costs a page or two, not all its rows).
    `turns_only` reads just id, role, content and status (no whole rows: faster, on the send path); `budget`: an
    assistant's, else the instance's."""
    budget = budget or rt.settings.context_token_budget
    reader = chats.list_turns if turns_only else chats.list_messages
    rows: list[Any] = []
    before: int | None = None
    while True:
        page = await reader(
            session=session, user_id=user_id, conversation_id=conversation_id, before_id=before, limit=HISTORY_PAGE
        )
        if page is None:
            raise InputError("conversation_not_found")
        rows = [*page, *rows]
        if len(page) < HISTORY_PAGE or sum(estimate_tokens(m.content) for m in rows if m.content.strip()) > budget:
            return rows
        before = page[0].id


async def regenerate(
    rt: Runtime, *, user_id: int, conversation_id: str, model: str = "", ip: str = "", source: str = "ui",
    api_key_id: int | None = None, extra_sinks: Sequence[Sink] = (), key_ticket: str | None = None,
) -> Started:  # fmt: skip
    """Answer the last user message again (also Retry after a failure)."""
    conversation, history = await _last_exchange(rt, user_id, conversation_id)
    last_user = next((m for m in reversed(history) if m.role == MessageRole.user), None)
    if last_user is None or last_user.id is None:
        raise InputError("nothing_to_regenerate")
    # A new answer is wanted: never replayed from the cache (the fresh one is stored, though).
    return await _answer_again(
        rt,
        conversation,
        history,
        last_user,
        model or conversation.model,
        ip=ip,
        source=source,
        api_key_id=api_key_id,
        extra_sinks=extra_sinks,
        key_ticket=key_ticket,
    )


async def edit_and_resend(
    rt: Runtime, *, user_id: int, conversation_id: str, message_id: int, text: str, model: str = "", ip: str = ""
) -> Started:
    """Replace the last user message's text and answer it anew."""
    text = chats.check_message_text(text, rt.settings.max_message_chars)
    conversation, history = await _last_exchange(rt, user_id, conversation_id)
    last_user = next((m for m in reversed(history) if m.role == MessageRole.user), None)
    if last_user is None or last_user.id != message_id:
        raise InputError("only_last_editable")
    last_user.content = text
    return await _answer_again(rt, conversation, history, last_user, model or conversation.model, edited=True, ip=ip)


async def _answer_again(
    rt: Runtime,
    conversation: Conversation,
    history: list[Message],
    question: Message,
    model: str,
    *,
    edited: bool = False,
    ip: str = "",
    source: str = "ui",
    api_key_id: int | None = None,
    extra_sinks: Sequence[Sink] = (),
    key_ticket: str | None = None,
) -> Started:
    assert question.id is not None
    user_id = conversation.user_id
    for message in history:
        if message.id is not None and message.id > question.id and message.status == MessageStatus.streaming:
            await rt.stop_answer(user_id=user_id, message_id=message.id)
    if model and not model.startswith(ASSISTANT_PREFIX):
        await check_model(rt, model, user_id=user_id)
    slot = await rt.admission.admit(user_id, ip)
    try:
        prepared = await prepare(
            rt, user_id=user_id, model=model, question=question.content,
            knowledge=augment.parse_knowledge(conversation.knowledge),
        )  # fmt: skip
        answer = await _replace_answer(
            user_id, conversation, question, prepared.model, edited=edited, sources=prepared.sources, picked=model
        )
    except BaseException:
        if slot:
            await rt.limiter.release(user_id, slot)
        raise
    kept = [m for m in history if m.id is not None and m.id <= question.id]
    run = await _start(
        rt,
        conversation,
        answer,
        kept,
        slot,
        use_cache=edited,
        source=source,
        api_key_id=api_key_id,
        extra_sinks=extra_sinks,
        key_ticket=key_ticket,
        prepared=prepared,
    )
    rt.chat_changed(user_id=user_id, conversation_id=conversation.id)
    return Started(conversation=conversation, messages=[question, answer], run=run)


async def _replace_answer(
    user_id: int, conversation: Conversation, question: Message, model: str, *, edited: bool,
    sources: Sequence[Source] = (), picked: str = "",
) -> Message:  # fmt: skip
    """Save the (edited) question, drop what followed it, and add an empty answer."""
    assert question.id is not None
    async with session_scope() as session:
        if edited:
            await chats.update_message(
                session=session, user_id=user_id, message_id=question.id, content=question.content
            )
        await chats.delete_messages_after(
            session=session, user_id=user_id, conversation_id=conversation.id, message_id=question.id
        )
        answer = await _empty_answer(session, user_id, conversation.id, model, sources)
        if conversation.model != (picked or model):
            await chats.update_conversation(
                session=session, user_id=user_id, conversation_id=conversation.id, model=picked or model
            )
    return answer
