"""Where backups go: a folder, or S3 (`s3://bucket/prefix`; BACKUP_S3_* settings, so MinIO or any S3 works).

Backup files are named `rubin-<made by>-<UTC time>.rubinbak`; "made by" is `manual` (the command) or
`scheduled` (the job, whose retention deletes only its own files).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from rubin_app.config import Settings

SUFFIX = ".rubinbak"
NAME = re.compile(r"^rubin-(manual|scheduled)-(\d{8}T\d{6}(?:\d{3})?Z)\.rubinbak$")


class DestinationError(Exception):
    """The destination cannot be reached or holds no such backup: the message says which."""


@dataclass(frozen=True)
class Entry:
    """One backup file at a destination."""

    name: str
    size: int
    modified: datetime

    @property
    def made_by(self) -> str:
        """'manual', 'scheduled', or '' for a file this app did not name."""
        found = NAME.match(self.name)
        return found.group(1) if found else ""


def backup_name(made_by: str, now: datetime) -> str:
    """The file name of a new backup."""
    return f"rubin-{made_by}-{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z{SUFFIX}"


class Destination(Protocol):
    """A place that stores backup files."""

    label: str

    def put(self, local: Path, name: str) -> None: ...
    def list(self) -> list[Entry]: ...
    def get(self, name: str, local: Path) -> None: ...
    def head(self, name: str, size: int) -> bytes: ...
    def delete(self, name: str) -> None: ...


class Folder:
    """A local (or mounted) folder."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self.label = str(self.path)

    def put(self, local: Path, name: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = self.path / f".{name}.partial"
        try:
            shutil.copyfile(local, partial)
            os.chmod(partial, 0o600)
            os.replace(partial, self.path / name)  # never a half-written file under a backup's name
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise DestinationError(f"cannot write to {self.label}: {exc.strerror or exc}") from None

    def list(self) -> list[Entry]:
        if not self.path.is_dir():
            return []
        found = []
        for item in self.path.iterdir():
            if item.name.endswith(SUFFIX) and item.is_file():
                stat = item.stat()
                found.append(Entry(item.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
        return sorted(found, key=lambda e: e.name)

    def _file(self, name: str) -> Path:
        path = self.path / name
        if "/" in name or not path.is_file():
            raise DestinationError(f"no backup {name!r} in {self.label}")
        return path

    def get(self, name: str, local: Path) -> None:
        shutil.copyfile(self._file(name), local)

    def head(self, name: str, size: int) -> bytes:
        with open(self._file(name), "rb") as fh:
            return fh.read(size)

    def delete(self, name: str) -> None:
        self._file(name).unlink()


class S3:
    """A bucket and prefix on S3 or an S3-compatible server."""

    def __init__(self, url: str, settings: Settings) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise DestinationError(f"{url!r}: an S3 destination is s3://bucket or s3://bucket/prefix")
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.label = f"s3://{bucket}/{self.prefix}"
        self._client = _s3_client(settings)

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise DestinationError(f"no backup {kwargs.get('Key', '')!r} in {self.label}") from None
            raise DestinationError(f"S3 {what} at {self.label} failed: {code or exc}") from None
        except (BotoCoreError, Boto3Error) as exc:
            raise DestinationError(f"S3 {what} at {self.label} failed: {exc}") from None

    def put(self, local: Path, name: str) -> None:
        self._call("upload", self._client.upload_file, Filename=str(local), Bucket=self.bucket, Key=self.prefix + name)

    def list(self) -> list[Entry]:
        found: list[Entry] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("listing", self._client.list_objects_v2, Bucket=self.bucket, Prefix=self.prefix, **token)
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                if name.endswith(SUFFIX) and "/" not in name:
                    found.append(Entry(name, int(item["Size"]), item["LastModified"]))
            if not page.get("IsTruncated"):
                return sorted(found, key=lambda e: e.name)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def get(self, name: str, local: Path) -> None:
        self._call("download", self._client.download_file, Bucket=self.bucket, Key=self.prefix + name,
                   Filename=str(local))  # fmt: skip

    def head(self, name: str, size: int) -> bytes:
        reply = self._call("read", self._client.get_object, Bucket=self.bucket, Key=self.prefix + name,
                           Range=f"bytes=0-{size - 1}")  # fmt: skip
        return bytes(reply["Body"].read())

    def delete(self, name: str) -> None:
        self._call("delete", self._client.delete_object, Bucket=self.bucket, Key=self.prefix + name)


def _s3_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    secret = settings.backup_s3_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.backup_s3_endpoint_url or None,
        region_name=settings.backup_s3_region or None,
        aws_access_key_id=settings.backup_s3_access_key_id or None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=120),
    )


def open_destination(target: str, settings: Settings) -> Destination:
    """The destination a `--to` value, a BACKUP_DESTINATION or a restore source names."""
    target = target.strip()
    if target.startswith("s3://"):
        return S3(target, settings)
    if "://" in target:
        raise DestinationError(f"{target!r}: a destination is a folder path or s3://bucket/prefix")
    return Folder(Path(target))


def default_target(settings: Settings) -> str:
    """BACKUP_DESTINATION, or DATA_DIR/backups."""
    return settings.backup_destination or str(settings.data_dir / "backups")
