"""One object-store interface over a local folder and S3-compatible storage, with atomic writes.

Keys are ``/``-separated and relative to the store root (``settings.store_uri``: a folder or
``s3://bucket/prefix``). Every write is published only when complete (a folder: written under a temporary name
and renamed into place; S3: one PUT or multipart upload, which S3 publishes whole or not at all), so a crashed
task never leaves a half-written object under a real key (docs/architecture.md section 3), and the same
objects are readable by GDAL/rasterio (a local path or ``/vsis3/`` with a custom endpoint).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import rasterio

from terracover.raster_io import OpenRasters, read_env
from terracover.settings import Settings

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

TMP_MARK = ".tmp-"  # temporary objects carry this in their last path segment; list() never returns them


def check_key(key: str) -> str:
    """Reject keys that could escape the root or collide with temporaries."""
    if not key or key.startswith("/") or key.endswith("/"):
        raise ValueError(f"invalid store key {key!r}: use a relative path like 'scenes/30SYJ/2023-04-01/B04.tif'")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid store key {key!r}: empty, '.' or '..' segments are not allowed")
    if TMP_MARK in parts[-1]:
        raise ValueError(f"invalid store key {key!r}: '{TMP_MARK}' is reserved for temporary objects")
    return key


class StoreWriteError(OSError):
    """An object could not be stored (the store answered an error, the connection broke, the disk is full);
    nothing was published under its key, so the write can simply be retried."""


class ObjectStore(ABC):
    """What terracover needs from object storage, whatever the backend."""

    root: str

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Publish a local file under ``key`` atomically (a reader sees the old object or the new one)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def download(self, key: str, path: Path) -> Path: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys under ``prefix`` (recursive), never temporaries."""

    @abstractmethod
    def modified(self, key: str) -> datetime:
        """Last-modified time (UTC) of an object."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def uri(self, key: str) -> str:
        """Canonical location for catalogs and lineage: an absolute path or ``s3://bucket/key``."""

    @abstractmethod
    def url(self, key: str) -> str:
        """A URL a client can fetch: ``file://`` locally, a presigned GET on S3."""

    @abstractmethod
    def gdal_path(self, key: str) -> str:
        """The path GDAL opens: a local path or ``/vsis3/bucket/key``."""

    def gdal_env(self) -> dict[str, str]:
        """GDAL options needed to read :meth:`gdal_path` (credentials come from the AWS_* environment)."""
        return {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        with self.writer(key) as path:
            path.write_bytes(data)

    @contextlib.contextmanager
    def writer(self, key: str, suffix: str = "") -> Iterator[Path]:
        """Yield a local temporary path to write; publish it under ``key`` only if the block completes."""
        check_key(key)
        tmpdir = Path(tempfile.mkdtemp(prefix="terracover-"))
        path = tmpdir / f"object{suffix}"
        try:
            try:
                yield path
            except OSError as exc:  # a full disk while writing the temporary file
                raise StoreWriteError(f"could not write {key!r}: {exc}") from exc
            if not path.exists():
                raise FileNotFoundError(f"writer for {key!r}: nothing was written to {path}")
            try:
                self.put_file(key, path)
            except Exception as exc:
                raise StoreWriteError(f"could not store {key!r} in {self.root}: {type(exc).__name__}: {exc}") from exc
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    @contextlib.contextmanager
    def open_raster(self, key: str) -> Iterator[DatasetReader]:
        """Open an object with rasterio (windowed reads stay ranged reads on S3)."""
        check_key(key)
        with read_env(self.gdal_env()), rasterio.open(self.gdal_path(key)) as src:
            yield src

    def open_rasters(self) -> OpenRasters:
        """Many rasters of this store, each opened once, read by window, closed together (one per thread)."""
        return OpenRasters(self.gdal_env())


class LocalStore(ObjectStore):
    """A folder: the embedded default. Atomic by ``os.replace`` within the destination directory."""

    def __init__(self, root: Path):
        self.base = Path(root).expanduser().resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        self.root = str(self.base)

    def path(self, key: str) -> Path:
        """The file holding ``key`` (for streaming it without a copy)."""
        return self.base / check_key(key)

    def put_file(self, key: str, path: Path) -> None:
        dst = self.path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}{TMP_MARK}{uuid.uuid4().hex}")
        try:
            shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in store {self.root}")
        return path.read_bytes()

    def download(self, key: str, path: Path) -> Path:
        src = self.path(key)
        if not src.is_file():
            raise FileNotFoundError(f"no object {key!r} in store {self.root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path)
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        start = self.base / prefix.rsplit("/", 1)[0] if "/" in prefix else self.base
        if not start.is_dir():
            return []
        keys = (p.relative_to(self.base).as_posix() for p in start.rglob("*") if p.is_file() and TMP_MARK not in p.name)
        return sorted(k for k in keys if k.startswith(prefix))

    def modified(self, key: str) -> datetime:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in store {self.root}")
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def url(self, key: str) -> str:
        return self.path(key).as_uri()

    def gdal_path(self, key: str) -> str:
        return str(self.path(key))

    def gdal_env(self) -> dict[str, str]:
        """A folder needs no VSI cache: the OS page cache already holds what was read."""
        return {**super().gdal_env(), "VSI_CACHE": "FALSE"}


class S3Store(ObjectStore):
    """An S3-compatible bucket and prefix (AWS, Garage, SeaweedFS, moto...).

    Atomic by S3 itself: a PUT, or a multipart upload at its completion, publishes the object whole or not at
    all, so the upload goes straight to the key. No temporary object ever exists: a writer killed mid-upload
    leaves at most an unfinished multipart upload, which no listing or read sees (a bucket lifecycle rule
    ``AbortIncompleteMultipartUpload`` reclaims its parts); a failed upload is aborted by the transfer manager.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        presign_expiry_s: int = 3600,
        public_endpoint_url: str | None = None,
    ):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.presign_expiry_s = presign_expiry_s
        self.root = f"s3://{bucket}/{self.prefix}".rstrip("/")
        session = boto3.session.Session()  # one per store: credentials are resolved (and logged) once

        def client(endpoint: str | None) -> Any:
            return session.client(
                "s3",
                endpoint_url=endpoint,
                region_name=region,
                config=Config(s3={"addressing_style": "path"} if endpoint else {}, retries={"mode": "standard"}),
            )

        self.client: Any = client(endpoint_url)
        # Presigned URLs go to clients outside the cluster: sign them for the endpoint those clients reach.
        self.signer: Any = client(public_endpoint_url) if public_endpoint_url else self.client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def get_bytes(self, key: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"no object {key!r} in store {self.root}") from exc

    def download(self, key: str, path: Path) -> Path:
        if not self.exists(key):
            raise FileNotFoundError(f"no object {key!r} in store {self.root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._key(key), str(path))
        return path

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def list(self, prefix: str = "") -> list[str]:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            keys += [o["Key"][strip:] for o in page.get("Contents", []) if TMP_MARK not in o["Key"].split("/")[-1]]
        return sorted(keys)

    def modified(self, key: str) -> datetime:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"no object {key!r} in store {self.root}")
        return head["LastModified"].astimezone(UTC)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def url(self, key: str) -> str:
        return str(
            self.signer.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=self.presign_expiry_s,
            )
        )

    def gdal_path(self, key: str) -> str:
        return f"/vsis3/{self.bucket}/{self._key(key)}"

    def gdal_env(self) -> dict[str, str]:
        env = {**super().gdal_env(), "AWS_REGION": self.region}
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url)
            env.update(
                {
                    "AWS_S3_ENDPOINT": parsed.netloc,
                    "AWS_HTTPS": "YES" if parsed.scheme == "https" else "NO",
                    "AWS_VIRTUAL_HOSTING": "FALSE",
                }
            )
        return env


def open_store(settings: Settings) -> ObjectStore:
    """The store named by ``settings.store_uri``."""
    if settings.store_is_s3:
        parsed = urlparse(settings.store_uri)
        if not parsed.netloc:
            raise ValueError(f"store_uri {settings.store_uri!r}: expected s3://bucket/prefix")
        return S3Store(
            parsed.netloc,
            parsed.path,
            settings.s3_endpoint_url,
            settings.s3_region,
            settings.presign_expiry_s,
            settings.s3_public_endpoint_url,
        )
    return LocalStore(Path(settings.store_uri))
