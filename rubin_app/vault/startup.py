"""What the app does with the keys when it starts, and the legacy pass that seals rows written in clear."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import attributes
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.models.chat import Conversation, Message
from rubin_app.services.db import session_scope
from rubin_app.vault.keyring import KeyringError
from rubin_app.vault.orm import SEALED_FIELDS
from rubin_app.vault.sealing import PREFIX
from rubin_app.vault.service import Vault, get_vault, reset_vault

log = logging.getLogger(__name__)


async def prepare() -> Vault:
    """Load the keys (KeyringError, with what to do, when they are missing, loose or wrong), give users made
    before encryption a data key, and seal what earlier versions stored in clear."""
    vault = get_vault()
    try:
        async with session_scope() as session:
            counts = await vault.check(session)
            made = await vault.backfill(session)
    except KeyringError:
        if vault.keyring.created and vault.keyring.key_file is not None:  # the data has keys: the file was lost
            vault.keyring.key_file.unlink(missing_ok=True)  # do not leave a new, useless key where the old belongs
            reset_vault()
        raise
    log.info(
        "encryption at rest %s: key %s from %s; %d data keys%s",
        "on" if vault.enabled else "OFF (ENCRYPTION_AT_REST=false)", vault.keyring.current_id, vault.keyring.source,
        sum(counts.values()) + made, f" ({made} new)" if made else "",
    )  # fmt: skip
    if vault.enabled:
        sealed = await seal_legacy()
        if sealed:
            log.info("sealed %d values stored in clear by an earlier version", sealed)
    return vault


def _clear(model: type, attr: str):  # type: ignore[no-untyped-def]
    column = col(getattr(model, attr))
    return (column != "") & ~column.startswith(PREFIX)


async def _seal_page(session: AsyncSession, model: type, batch: int) -> int:
    where = or_(*(_clear(model, a) for a in SEALED_FIELDS[model]))
    rows: Sequence[Any] = (await session.exec(select(model).where(where).limit(batch))).all()
    for row in rows:  # opened (i.e. left as is: clear text) by the load hook
        for attr in SEALED_FIELDS[model]:
            attributes.flag_modified(row, attr)  # sealed by the flush hook
        session.add(row)
    await session.flush()
    return len(rows)


async def seal_legacy(batch: int = 500) -> int:
    """Seal every content value still stored in clear, a batch per transaction (online, idempotent)."""
    started, total = time.perf_counter(), 0
    for model in (Conversation, Message):
        while True:
            async with session_scope() as session:
                done = await _seal_page(session, model, batch)
            total += done
            if done < batch:
                break
    if total:
        log.debug("legacy sealing took %.1f s", time.perf_counter() - started)
    return total
