"""The proof file store (issue 20): the folder on disk, whose keys never leave it and whose
files are written whole, and the S3 store against a real S3-compatible HTTP server (moto's,
on a free loopback port)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from store.proof_files import (
    LocalProofFiles,
    ProofFiles,
    ProofFilesError,
    S3ProofFiles,
    open_proof_files,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
BAD_KEYS = (
    "../outside",
    "a/../../outside",
    "/etc/passwd",
    "a/./b",
    ".hidden",
    "a//b",
    "a\\..\\b",
    "",
    "a/b/",
    "ok\x00",
)


def _round_trip(files: ProofFiles) -> None:
    files.put("org1/action-1-photo.jpg", JPEG, "image/jpeg")
    files.put("org1/action-1-signature.png", PNG, "image/png")
    assert files.get("org1/action-1-photo.jpg") == (JPEG, "image/jpeg")
    assert files.get("org1/action-1-signature.png") == (PNG, "image/png")
    assert files.get("org1/missing.jpg") is None
    # The same key again replaces the file whole.
    files.put("org1/action-1-photo.jpg", PNG, "image/png")
    assert files.get("org1/action-1-photo.jpg") == (PNG, "image/png")
    for key in BAD_KEYS:
        with pytest.raises(ValueError, match="key"):
            files.put(key, JPEG, "image/jpeg")
        with pytest.raises(ValueError, match="key"):
            files.get(key)
    with pytest.raises(ValueError, match="content type"):
        files.put("org1/x.jpg", JPEG, "image/jpeg\nX-Evil: 1")


def test_local_files_round_trip_and_keys_stay_inside(tmp_path: Path) -> None:
    folder = tmp_path / "proofs"
    files = LocalProofFiles(folder)
    _round_trip(files)
    # Nothing was written outside the folder, and no temporary file was left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proofs"]
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert written == ["org1/action-1-photo.jpg", "org1/action-1-signature.png"]


def test_a_symlink_in_the_folder_does_not_lead_out(tmp_path: Path) -> None:
    """A link planted inside the folder (by whoever could write there) is not followed out."""
    folder = tmp_path / "proofs"
    outside = tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "org1").symlink_to(outside, target_is_directory=True)
    files = LocalProofFiles(folder)
    with pytest.raises(ValueError, match="leaves"):
        files.put("org1/photo.jpg", JPEG, "image/jpeg")
    assert list(outside.iterdir()) == []


def test_a_write_that_fails_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is renamed into place only once written: a write that fails half way (the
    disk full at its flush) changes nothing and leaves no temporary file."""
    files = LocalProofFiles(tmp_path)
    files.put("org1/photo.jpg", JPEG, "image/jpeg")

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ProofFilesError, match="No space left"):
        files.put("org1/photo.jpg", PNG, "image/png")
    monkeypatch.undo()
    assert files.get("org1/photo.jpg") == (JPEG, "image/jpeg")
    assert sorted(p.name for p in (tmp_path / "org1").iterdir()) == ["photo.jpg"]


def test_an_unreadable_folder_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a folder")
    files = LocalProofFiles(tmp_path / "file")
    with pytest.raises(ProofFilesError):
        files.put("org1/photo.jpg", JPEG, "image/jpeg")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server, a real HTTP server, on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


CREDENTIALS = {"access_key_id": "test-key", "secret_access_key": "test-secret"}


def _bucket(endpoint: str, name: str) -> str:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-north-1",
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    )
    client.create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"}
    )
    return name


@pytest.mark.integration
def test_s3_round_trip(s3_endpoint: str) -> None:
    bucket = _bucket(s3_endpoint, "proofs-round-trip")
    files = open_proof_files(
        Path("unused"),
        bucket=bucket,
        endpoint_url=s3_endpoint,
        region="eu-north-1",
        **CREDENTIALS,
    )
    assert isinstance(files, S3ProofFiles)
    _round_trip(files)


@pytest.mark.integration
def test_s3_without_its_bucket_is_a_store_error(s3_endpoint: str) -> None:
    files = S3ProofFiles(
        "no-such-bucket",
        endpoint_url=s3_endpoint,
        region="eu-north-1",
        access_key_id=CREDENTIALS["access_key_id"],
        secret_access_key=CREDENTIALS["secret_access_key"],
    )
    with pytest.raises(ProofFilesError):
        files.put("org1/photo.jpg", JPEG, "image/jpeg")
    with pytest.raises(ProofFilesError):
        files.get("org1/photo.jpg")


def test_bucket_settings_without_a_bucket_are_refused(tmp_path: Path) -> None:
    assert isinstance(open_proof_files(tmp_path), LocalProofFiles)
    with pytest.raises(ValueError, match="proof_s3_bucket"):
        open_proof_files(tmp_path, endpoint_url="http://127.0.0.1:9000")
