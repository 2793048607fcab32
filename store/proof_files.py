"""Where drivers' proof-of-delivery photos and signatures are kept (issue 20): images are
too large for the database, whose rows only name them by key.

Two stores behind one small interface, :class:`ProofFiles`: a folder on the service's disk
(the default, ``<data_dir>/proofs``) and any S3-compatible bucket through boto3 (AWS, MinIO,
Ceph, R2...), for several service processes on several machines. Keys are made by the
service, never by a client, and are still checked: a key is relative, of plain segments,
and can never name a file outside the folder.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

#: Relative keys of plain segments: no "..", no leading "/" or ".", no backslashes.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7}")
_CONTENT_TYPE = re.compile(r"[a-z]+/[a-z0-9.+-]{1,60}")
#: S3 answers these for an object that is not there.
_MISSING = {"NoSuchKey", "404", "NotFound"}


class ProofFilesError(Exception):
    """The store could not keep or give back a file now (disk, network, credentials)."""


class ProofFiles(Protocol):
    """Keeps images by key; ``put`` with the same key again replaces the file whole."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> tuple[bytes, str] | None: ...


def check_key(key: str) -> str:
    """``key`` if it is a safe relative key, else ValueError (a bug in the caller)."""
    if not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"not a proof file key: {key!r}")
    return key


def _check_type(content_type: str) -> str:
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise ValueError(f"not a content type: {content_type!r}")
    return content_type


class LocalProofFiles:
    """Files in ``folder``: each written whole to a temporary file and renamed into place
    (a reader never sees half an image), its content type on the file's first line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()

    def _path(self, key: str) -> Path:
        path = (self.folder / check_key(key)).resolve()
        # The pattern already forbids escapes; a symlink planted in the folder must not lead out.
        if not path.is_relative_to(self.folder):
            raise ValueError(f"key {key!r} leaves the proof folder")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        header = _check_type(content_type).encode() + b"\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(header)
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise ProofFilesError(f"cannot write proof file: {exc.strerror or exc}") from exc

    def get(self, key: str) -> tuple[bytes, str] | None:
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProofFilesError(f"cannot read proof file: {exc.strerror or exc}") from exc
        content_type, _, data = raw.partition(b"\n")
        return data, content_type.decode("ascii", errors="replace")


class S3ProofFiles:
    """Objects in an S3-compatible bucket. Path-style addressing when an endpoint is given:
    self-hosted stores (MinIO and the like) rarely have a DNS name per bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        self.bucket = bucket
        config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        # A session of its own: boto3's default session is not safe to share across threads.
        session = boto3.session.Session()
        self._client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=check_key(key),
                Body=data,
                ContentType=_check_type(content_type),
            )
        except (BotoCoreError, ClientError) as exc:
            raise ProofFilesError(f"cannot store proof file in bucket: {exc}") from exc

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            found = self._client.get_object(Bucket=self.bucket, Key=check_key(key))
            data: bytes = found["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise ProofFilesError(f"cannot read proof file from bucket: {exc}") from exc
        except BotoCoreError as exc:
            raise ProofFilesError(f"cannot read proof file from bucket: {exc}") from exc
        return data, str(found.get("ContentType") or "application/octet-stream")


def open_proof_files(
    folder: Path,
    *,
    bucket: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> ProofFiles:
    """The bucket when one is named, else the folder. Bucket settings without a bucket are
    refused: proofs silently kept on one machine's disk would be lost with it."""
    if bucket:
        return S3ProofFiles(
            bucket,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
    if endpoint_url or region or access_key_id or secret_access_key:
        raise ValueError(
            "proof_s3_bucket is not set, but other proof_s3_* settings are: set the bucket "
            "(LASTMILE_PROOF_S3_BUCKET) or none of them"
        )
    return LocalProofFiles(folder)
