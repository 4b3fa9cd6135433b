"""The answer's webhook events, queued in the same transaction as its final save (the transactional outbox):
`message.completed` for a complete answer, `message.failed` for one that ended in an error or was stopped."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.generation.run import Run
from rubin_app.models import MessageStatus
from rubin_app.webhooks import events


async def queue_message_event(session: AsyncSession, run: Run) -> None:
    """A final-save hook (`AnswerWriter.final_hooks`): queue the run's event for the subscribed endpoints."""
    if run.status == MessageStatus.complete:
        await events.emit(
            session, event_type="message.completed", user_id=run.user_id,
            data={"conversation_id": run.conversation_id, "message_id": run.message_id, "model": run.model,
                  "source": run.source, "prompt_tokens": run.prompt_tokens, "completion_tokens": run.completion_tokens,
                  "duration_ms": run.duration_ms, "content": run.text},
        )  # fmt: skip
    elif run.status in (MessageStatus.error, MessageStatus.interrupted):
        await events.emit(
            session, event_type="message.failed", user_id=run.user_id,
            data={"conversation_id": run.conversation_id, "message_id": run.message_id, "model": run.model,
                  "source": run.source, "status": run.status.value, "error": run.error},
        )  # fmt: skip
