"""Schema migrations through alembic."""

from __future__ import annotations

from alembic.config import Config

from alembic import command
from rubin_app.config import PROJECT_DIR


def alembic_config(url: str | None = None) -> Config:
    """Alembic config for the project, optionally for another database URL."""
    cfg = Config(str(PROJECT_DIR / "alembic" / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_DIR / "alembic"))
    # Split prepend_sys_path on os.pathsep only: the legacy default also splits on spaces and is deprecated.
    if cfg.get_main_option("path_separator") is None:
        cfg.set_main_option("path_separator", "os")
    if url:
        cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade_head(url: str | None = None) -> None:
    """Bring the database to the newest schema."""
    command.upgrade(alembic_config(url), "head")
