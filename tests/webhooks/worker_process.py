"""One dispatcher round in a process of its own: the kill test SIGKILLs it in the middle of a delivery.

python -m tests.webhooks.worker_process <async database URL> <SECRET_KEY> <lease seconds>
"""

from __future__ import annotations

import asyncio
import sys

from rubin_app.config import Settings
from rubin_app.webhooks.delivery import WebhookDispatcher


async def main(database_url: str, secret_key: str, lease_seconds: float) -> None:
    settings = Settings(_env_file=None, webhook_allow_private=True, webhook_timeout_seconds=60)  # type: ignore[call-arg]
    dispatcher = WebhookDispatcher(
        settings, secret_key=secret_key, database_url=database_url, lease_seconds=lease_seconds
    )
    print("sent", await dispatcher.run_once(), flush=True)  # never printed: the test kills the process first


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
