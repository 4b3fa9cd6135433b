"""The webhook dispatcher: a background loop that sends due deliveries, signed (Standard Webhooks 1.0).

Several dispatchers (workers, processes, machines) may run on one database: each claims rows under a
lease (webhooks/outbox.py), so a delivery is never sent by two at once, and one whose dispatcher died
mid-send is sent again once its lease expires — at least once; the webhook-id stays the same, so a
receiver can drop a duplicate.

Only 2xx is success. 410 Gone disables the endpoint and stops its queued deliveries. Anything else (an
error status, no answer, a refused redirect) is retried on WEBHOOK_RETRY_SCHEDULE, jittered, until the
schedule runs out: then the delivery has failed. Requests go through the outbound guard
(rubin_app/core/outbound.py) on every attempt and every redirect: a host that now resolves to a private
address is refused at delivery too. Logs name the event, its type and the endpoint id: never the URL
(it may hold a token), a secret or the payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from standardwebhooks import Webhook

from rubin_app.config import Settings
from rubin_app.core import outbound
from rubin_app.core.clock import utcnow
from rubin_app.core.waiting import wait_event
from rubin_app.webhooks.crypto import SecretBox
from rubin_app.webhooks.events import add_wake_listener, remove_wake_listener
from rubin_app.webhooks.models import DeliveryStatus
from rubin_app.webhooks.outbox import Job, Outcome, claim_due, next_due_at, save_outcome

log = logging.getLogger(__name__)

USER_AGENT = "Rubin-Webhooks/1.0 (+https://www.standardwebhooks.com)"
MAX_RESPONSE_BYTES = 4096  # of an answer's body: only a short snippet is kept (last_error)
_SPACE = re.compile(r"\s+")


def signature_headers(event_id: str, timestamp: datetime, payload: str, secrets: Sequence[str]) -> dict[str, str]:
    """The Standard Webhooks headers; one `v1,…` signature per secret, space-separated."""
    signatures = " ".join(Webhook(s).sign(event_id, timestamp, payload) for s in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }


def _snippet(body: bytes) -> str:
    return _SPACE.sub(" ", body.decode("utf-8", errors="replace")).strip()[:160]


class WebhookDispatcher:
    """Sends due webhook deliveries: `start()` a background loop and `await stop()` it; or `run_once()`.

    `secret_key` is the app's SECRET_KEY (it decrypts the endpoints' secrets); `database_url` the async
    URL (default: the settings'). `lease_seconds` (default: WEBHOOK_TIMEOUT_SECONDS + 60) must be longer
    than one attempt can take, or a slow attempt could be sent a second time by another dispatcher.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        secret_key: str,
        database_url: str | None = None,
        lease_seconds: float | None = None,
        batch_size: int = 20,
        concurrency: int = 8,
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.lease = timedelta(seconds=lease_seconds or settings.webhook_timeout_seconds + 60)
        self.batch_size = batch_size
        self._box = SecretBox(secret_key)
        self._networks = outbound.parse_networks(settings.webhook_allowed_networks)
        self._transport = outbound.new_transport()
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._listener: Callable[[], None] | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run the delivery loop in the background (call it from the running event loop)."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        self._stopping = False

        def listener() -> None:  # emit()'s commit may run on any thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: no one left to wake
                loop.call_soon_threadsafe(wake.set)

        self._listener = listener
        add_wake_listener(listener)
        self._task = loop.create_task(self._loop(), name="webhook-dispatcher")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the loop and close connections. Attempts in flight get `grace` seconds; one cut short is sent
        again by any dispatcher once its lease expires."""
        task, self._task = self._task, None
        if task is not None:
            if self._listener is not None:
                remove_wake_listener(self._listener)
            self._stopping = True
            self.wake()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=grace)  # cancelled when the grace is over
        await self._transport.aclose()

    def wake(self) -> None:
        """Look for due deliveries now instead of at the next poll (emit() does it after its commit)."""
        if self._wake is not None:
            self._wake.set()

    async def _loop(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            try:
                sent = await self.run_once()
            except Exception:
                log.exception("webhook dispatcher: a round failed; trying again after the poll interval")
                sent = 0
            if sent or self._stopping:
                continue
            await wait_event(self._wake, await self._idle_seconds())

    async def _idle_seconds(self) -> float:
        """Until the next delivery is due, at most WEBHOOK_POLL_SECONDS."""
        poll = self.settings.webhook_poll_seconds
        try:
            due = await next_due_at(self.database_url)
        except Exception:
            log.exception("webhook dispatcher: cannot read the next due time")
            return poll
        return poll if due is None else max(0.05, min(poll, (due - utcnow()).total_seconds()))

    # ------------------------------------------------------------------ one round

    async def run_once(self) -> int:
        """Claim the deliveries due now (up to the batch size) and send them concurrently; how many there were."""
        jobs = await claim_due(self.database_url, box=self._box, lease=self.lease, limit=self.batch_size)
        await asyncio.gather(*(self._send(job) for job in jobs))
        return len(jobs)

    async def _send(self, job: Job) -> None:
        async with self._limit:
            try:
                outcome = await self._post(job)
                status = await save_outcome(self.database_url, self.settings, job, outcome)
            except Exception:  # one broken delivery never stops the others; its lease expires and it is retried
                log.exception("webhook %s: unexpected error", job.event_id)
                return
        if status is None:
            log.warning("webhook %s: its lease was lost before the result was saved", job.event_id)
        else:
            self._log(job, outcome, status)

    async def _post(self, job: Job) -> Outcome:
        if not job.secrets:
            return Outcome(None, "the endpoint's secret cannot be decrypted (was SECRET_KEY changed?)")
        headers = {
            **signature_headers(job.event_id, utcnow(), job.payload, job.secrets),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        try:
            response = await outbound.post(
                self._transport,
                job.url,
                content=job.payload.encode("utf-8"),
                headers=headers,
                allow_private=self.settings.webhook_allow_private,
                allowed_networks=self._networks,
                timeout=self.settings.webhook_timeout_seconds,
                max_body=MAX_RESPONSE_BYTES,
            )
        except outbound.OutboundRefused as exc:
            return Outcome(None, f"refused: {exc.reason}")
        except outbound.OutboundError as exc:
            return Outcome(None, exc.reason)
        code = response.status_code
        error = "" if 200 <= code < 300 else f"HTTP {code}" + (f": {_snippet(response.body)}" if response.body else "")
        return Outcome(code, error, response.elapsed_ms)

    def _log(self, job: Job, outcome: Outcome, status: str) -> None:
        """One line per attempt: ids, type, status and timing; never the URL, a secret or the payload."""
        if status == DeliveryStatus.succeeded:
            log.info(
                "webhook %s (%s) to endpoint %s: HTTP %s in %s ms, attempt %s",
                job.event_id, job.event_type, job.endpoint_id, outcome.status_code, outcome.response_ms, job.attempt,
            )  # fmt: skip
            return
        # A transport error's reason never holds the URL or the body; an HTTP error's snippet (the
        # receiver's answer, which may echo the payload) stays in the delivery log only.
        what = f"got HTTP {outcome.status_code}" if outcome.status_code else f"failed ({outcome.error})"
        log.warning(
            "webhook %s (%s) to endpoint %s: attempt %s %s; now %s",
            job.event_id, job.event_type, job.endpoint_id, job.attempt, what, status,
        )  # fmt: skip
