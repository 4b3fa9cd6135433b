"""TLS to PostgreSQL: libpq's options in DATABASE_URL (`sslmode=verify-full&sslrootcert=...`) reach psycopg through
both the migrations' and the app's engines, against a real cluster that accepts TLS connections only."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from rubin_app.config import get_settings
from rubin_app.services import db as db_module
from rubin_app.services.db import session_scope
from rubin_app.services.migrate import upgrade_head
from tests.conftest import _pg_bindir, _run_pg, free_port
from tests.fakes.certs import TestCA


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, TestCA, TestCA]]:
    """A throwaway cluster with ssl=on whose pg_hba.conf admits TLS connections only; (port, its CA, another CA)."""
    bindir = _pg_bindir()
    as_root = os.geteuid() == 0
    pki = tmp_path_factory.mktemp("pg-pki")
    ca, other = TestCA(pki / "ca"), TestCA(pki / "other", name="Somebody Else CA")
    issued = ca.issue("postgres")
    base = Path(tempfile.mkdtemp(prefix="rubin-pgtls-"))
    data, port = base / "data", free_port()
    shutil.copy(issued.cert, base / "server.crt")
    shutil.copy(issued.key, base / "server.key")
    (base / "server.key").chmod(0o600)
    if as_root:
        import pwd

        user = pwd.getpwnam("postgres")
        for path in (base, base / "server.crt", base / "server.key"):
            os.chown(path, user.pw_uid, user.pw_gid)
    started = False
    try:
        _run_pg([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "--no-sync", "-U", "postgres"],
                as_postgres=as_root)  # fmt: skip
        (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
        options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on "
                   f"-c ssl_cert_file={base / 'server.crt'} -c ssl_key_file={base / 'server.key'}")  # fmt: skip
        _run_pg([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w",
                 "start"], as_postgres=as_root)  # fmt: skip
        started = True
        yield port, ca, other
    finally:
        if started:
            stop = [str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate"]
            subprocess.run([*(["runuser", "-u", "postgres", "--"] if as_root else []), *stop],
                           capture_output=True, timeout=60, check=False)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _url(port: int, query: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres?{query}"


async def test_database_url_tls_options_reach_psycopg(
    app_env: Callable[..., None], tls_postgres: tuple[int, TestCA, TestCA]
) -> None:
    port, ca, _ = tls_postgres
    app_env(database_url=_url(port, f"sslmode=verify-full&sslrootcert={ca.cert}"))
    settings = get_settings()
    upgrade_head(settings.sync_database_url)  # alembic's engine
    try:
        async with session_scope(settings.async_database_url) as session:  # the app's engine
            used = (await session.exec(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))).scalar()
            tables = (await session.exec(text("SELECT count(*) FROM users"))).scalar()
        assert used is True and tables == 0
    finally:
        await db_module.dispose_all()


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("sslmode=verify-full&sslrootcert={other}", "certificate verify failed"),  # a server from another CA
        ("sslmode=disable", "no encryption"),  # plain connections are not accepted by this server
    ],
)
async def test_untrusted_or_plain_connections_are_refused(
    app_env: Callable[..., None], tls_postgres: tuple[int, TestCA, TestCA], query: str, error: str
) -> None:
    port, _, other = tls_postgres
    app_env(database_url=_url(port, query.format(other=other.cert)))
    try:
        with pytest.raises(OperationalError, match=error):
            async with session_scope(get_settings().async_database_url) as session:
                await session.exec(text("SELECT 1"))
    finally:
        await db_module.dispose_all()
