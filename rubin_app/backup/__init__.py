"""Backups and restore: `python -m rubin_app backup|restore` and the scheduled job (docs/backup.md)."""
