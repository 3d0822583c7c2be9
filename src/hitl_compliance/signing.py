"""Signed, anchored heads of the audit ledger: who signs, where heads go, how often.

A hash chain shows edits, but a database owner can cut rows from the end and
rewrite the head, or re-hash every row. A store configured with a
[`Sealing`][hitl_compliance.signing.Sealing] signs its chain head (a
[`SealedHead`][hitl_compliance.ledger.SealedHead]) every `every_rows` rows or
`every` seconds and on every export, keeps it in its seals table and publishes
it to each [`Anchor`][hitl_compliance.signing.Anchor]; the private key lives
outside the database. `verify_audit(public_key=...)` then proves the rows up to
the last sealed head.

Plug-in points: a [`Signer`][hitl_compliance.signing.Signer] (ours:
[`Ed25519Signer`][hitl_compliance.signing.Ed25519Signer], or a KMS adapter) and
an `Anchor` (ours: [`FileAnchor`][hitl_compliance.signing.FileAnchor]; an
object-lock bucket or an RFC 3161 timestamp authority are adapters, see the
audit docs). Needs the `signing` extra: `pip install "hitl-compliance[signing]"`.

Example:
    ```python
    signer = Ed25519Signer.from_pem_file("/run/secrets/audit-key.pem")
    sealing = Sealing(signer, every_rows=1000, every=timedelta(minutes=5),
                      anchors=(FileAnchor("/mnt/worm/anchors.jsonl"),))
    coord = HitlCoordinator(graph, reviews=store, sealing=sealing)
    report = await coord.verify_audit(public_key="audit-key.pub.pem")
    ```
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from hitl_compliance.errors import ConfigurationError, SigningUnavailableError
from hitl_compliance.ledger import SealedHead, ed25519_verifier, key_id_of, read_seals

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "Anchor",
    "Ed25519Signer",
    "FileAnchor",
    "PublicKey",
    "Sealing",
    "Signer",
    "load_public_key",
]

_INSTALL = (
    'Signed audit heads need the cryptography package: pip install "hitl-compliance[signing]".'
)


@runtime_checkable
class Signer(Protocol):
    """Signs sealed heads; the private key stays with it, never in the database.

    `key_id` is stored with every seal; `public_key_pem()` is what an auditor
    verifies with. A KMS adapter implements the same three members.
    """

    @property
    def key_id(self) -> str:
        """A stable id of the key pair (ours: `ed25519:` and 16 hex of the public key's SHA-256)."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The signature of `message` (a [`seal_message`][hitl_compliance.ledger.seal_message])."""
        ...

    def public_key_pem(self) -> bytes:
        """The public key, PEM (SubjectPublicKeyInfo)."""
        ...


@runtime_checkable
class Anchor(Protocol):
    """Somewhere sealed heads go that the database owner cannot rewrite.

    `publish` must only ever append; `heads` reads back what was published, for
    `verify_audit(anchors=...)`.
    """

    async def publish(self, head: SealedHead) -> None:
        """Record one sealed head durably."""
        ...

    async def heads(self) -> list[SealedHead]:
        """Every head published so far, oldest first."""
        ...


def _crypto() -> Any:
    """The `cryptography` Ed25519 module, or SigningUnavailableError naming the extra."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SigningUnavailableError(_INSTALL) from None
    return ed25519


class Ed25519Signer:
    """An Ed25519 [`Signer`][hitl_compliance.signing.Signer] over a private key held in memory.

    Build it from a PEM file (`from_pem_file`), an environment variable holding
    the PEM or the base64 raw key (`from_env`), or the 32 raw bytes.

    Example:
        ```python
        signer = Ed25519Signer.from_env("HITL_AUDIT_SIGNING_KEY")
        Path("audit-key.pub.pem").write_bytes(signer.public_key_pem())
        ```
    """

    def __init__(self, private_key: bytes) -> None:
        """Args: private_key: 32 raw bytes, or a PEM (PKCS#8, unencrypted) Ed25519 private key."""
        ed25519 = _crypto()
        from cryptography.hazmat.primitives import serialization

        try:
            if len(private_key) == 32:
                key = ed25519.Ed25519PrivateKey.from_private_bytes(private_key)
            else:
                key = serialization.load_pem_private_key(private_key, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"Not an Ed25519 private key: {exc}.") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigurationError("The private key is not an Ed25519 key.")
        self._key = key
        self._public_pem: bytes = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = key_id_of(raw)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """A signer with a fresh random key (tests, or to create a key pair once)."""
        return cls(os.urandom(32))

    @classmethod
    def from_pem_file(cls, path: str | os.PathLike[str]) -> Ed25519Signer:
        """Read an unencrypted PKCS#8 PEM private key from `path`."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"Cannot read the signing key {str(path)!r}: {exc}.") from None
        return cls(data)

    @classmethod
    def from_env(cls, name: str = "HITL_AUDIT_SIGNING_KEY") -> Ed25519Signer:
        """Read the key from environment variable `name`: a PEM, or the base64 of 32 raw bytes."""
        value = os.environ.get(name)
        if not value:
            raise ConfigurationError(f"Environment variable {name} holds no signing key.")
        if "-----BEGIN" in value:
            return cls(value.encode())
        try:
            return cls(base64.b64decode(value, validate=True))
        except ValueError:
            raise ConfigurationError(f"{name} is neither a PEM nor base64 of 32 bytes.") from None

    def private_key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (to store it in a secret manager once)."""
        from cryptography.hazmat.primitives import serialization

        pem: bytes = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pem

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        signature: bytes = self._key.sign(message)
        return signature

    def public_key_pem(self) -> bytes:
        return self._public_pem

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self._key_id!r})"  # never the key


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key an auditor verifies sealed heads with."""

    pem: bytes
    key_id: str
    _verify: Callable[[bytes, bytes], bool] = field(repr=False, compare=False)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's signature of `message`."""
        return self._verify(message, signature)


KeySource: TypeAlias = "str | os.PathLike[str] | bytes | PublicKey"
"""A public key: a PEM file's path, PEM bytes, or a loaded `PublicKey`."""


def load_public_key(source: str | os.PathLike[str] | bytes | PublicKey) -> PublicKey:
    """A public key from PEM bytes or a PEM file's path.

    Raises:
        SigningUnavailableError: `cryptography` is not installed.
        ConfigurationError: the file cannot be read or is not an Ed25519 public key.
    """
    if isinstance(source, PublicKey):
        return source
    if isinstance(source, bytes):
        pem = source
    else:
        try:
            pem = Path(source).read_bytes()
        except OSError as exc:
            where = str(source)
            raise ConfigurationError(f"Cannot read the public key {where!r}: {exc}.") from None
    _crypto()
    try:
        key_id, verify = ed25519_verifier(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"Not an Ed25519 public key (PEM): {exc}.") from None
    return PublicKey(pem=pem, key_id=key_id, _verify=verify)


def public_keys(source: KeySource | Sequence[KeySource]) -> list[PublicKey]:
    """One key ([`load_public_key`][hitl_compliance.load_public_key]) or several (a rotation)."""
    if isinstance(source, str | bytes | os.PathLike | PublicKey):
        return [load_public_key(source)]
    return [load_public_key(one) for one in source]


class FileAnchor:
    """An [`Anchor`][hitl_compliance.signing.Anchor] appending sealed heads to a JSON Lines file.

    One `{"type": "seal", ...}` line per head, opened in append mode and
    fsynced. Put the file where the database owner cannot rewrite it (another
    host, an append-only or WORM mount); the offline verifier reads it with
    `--anchor FILE`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    async def publish(self, head: SealedHead) -> None:
        line = _dumps(head.to_record()) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    async def heads(self) -> list[SealedHead]:
        if not self.path.exists():
            return []
        return await asyncio.to_thread(read_seals, str(self.path))

    def __repr__(self) -> str:
        return f"FileAnchor({str(self.path)!r})"


def _dumps(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Sealing:
    """When a store signs its chain head, with which signer, and where it publishes it.

    A head is sealed after a write once `every_rows` rows were appended since
    the last seal, or `every` has passed since it (whichever first; None turns
    a rule off), and, with `on_export`, before every export. Pass it to
    `HitlCoordinator(sealing=...)` (or `store.configure_sealing`).

    Example:
        ```python
        sealing = Sealing(Ed25519Signer.from_pem_file("key.pem"), every_rows=500)
        ```
    """

    signer: Signer
    every_rows: int | None = 1000
    every: timedelta | None = timedelta(minutes=5)
    on_export: bool = True
    anchors: tuple[Anchor, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.signer, Signer):
            raise ConfigurationError("Sealing.signer must implement Signer.")
        rows = self.every_rows
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
            raise ConfigurationError(f"every_rows must be an int >= 1 or None, got {rows!r}.")
        if self.every is not None and (
            not isinstance(self.every, timedelta) or self.every <= timedelta(0)
        ):
            raise ConfigurationError("every must be a positive timedelta or None.")
        for anchor in self.anchors:
            if not isinstance(anchor, Anchor):
                raise ConfigurationError(
                    f"anchors must implement Anchor, got {type(anchor).__name__}."
                )
