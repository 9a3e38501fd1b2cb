"""TLS material for deliveries (SPEC §14): PEM text checked when the config is loaded, and the
``ssl.SSLContext`` built from it. There is no way to turn certificate verification off.

The files are read once, when the config is loaded; contexts are built from the text held
in memory, so a file changed or removed afterwards cannot break a running daemon.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# OpenSSL's verify codes, as the delivery log names them.
_VERIFY = {
    2: "unknown CA", 18: "unknown CA (self-signed)", 19: "unknown CA (self-signed in the chain)",
    20: "unknown CA", 21: "unknown CA", 9: "not yet valid", 10: "expired", 23: "revoked",
    62: "hostname mismatch", 64: "hostname mismatch",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """One combination of extra CAs and client certificate, as PEM text; None where unset."""

    ca_pem: str | None = field(default=None, repr=False)
    cert_pem: str | None = field(default=None, repr=False)
    key_pem: str | None = field(default=None, repr=False)


def _bare() -> ssl.SSLContext:
    # No system CAs: checking a file needs only OpenSSL's parser, and stays fast.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")


def check_certificates(pem: str) -> None:
    """ValueError unless ``pem`` holds at least one certificate, all of them valid."""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        _bare().load_verify_locations(cadata=pem)
    except ssl.SSLError as exc:
        raise ValueError(f"is not a valid PEM certificate file: {_reason(exc)}") from None


def check_key(pem: str) -> None:
    """ValueError unless ``pem`` holds an unencrypted private key."""
    if "ENCRYPTED" in pem:
        raise ValueError("is encrypted; hookd needs the key without a passphrase (protect it with file permissions)")
    if "PRIVATE KEY-----" not in pem:
        raise ValueError("holds no PEM private key (-----BEGIN PRIVATE KEY-----)")


def check_pair(cert_pem: str, key_pem: str) -> None:
    """ValueError unless the key belongs to the certificate."""
    try:
        with _files(cert_pem, key_pem) as (cert, key):
            _bare().load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as exc:
        raise ValueError(f"client_cert and client_key do not match: {_reason(exc)}") from None


def client_context(material: TlsMaterial) -> ssl.SSLContext:
    """The system's CAs plus ``material``'s, presenting its client certificate if it has one."""
    ctx = ssl.create_default_context()
    if material.ca_pem is not None:
        ctx.load_verify_locations(cadata=material.ca_pem)
    if material.cert_pem is not None and material.key_pem is not None:
        with _files(material.cert_pem, material.key_pem) as (cert, key):
            ctx.load_cert_chain(cert, key, password=_no_passphrase)
    return ctx


def verify_reason(exc: ssl.SSLCertVerificationError) -> str:
    """A failed certificate check as the delivery log says it: the kind of failure, then OpenSSL's words."""
    label = _VERIFY.get(exc.verify_code or 0)
    detail = (exc.verify_message or _reason(exc)).rstrip(".")
    message = f"certificate verify failed: {label} ({detail})" if label else f"certificate verify failed: {detail}"
    if label and label.startswith("unknown CA"):
        message += "; trust the receiver's CA with tls.ca_file"
    return message


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    return b""


@contextlib.contextmanager
def _files(*texts: str) -> Iterator[tuple[str, ...]]:
    """``texts`` as paths OpenSSL can open (it loads a certificate chain only from files):
    anonymous memory files where Linux has them, else files in a private temporary folder."""
    if hasattr(os, "memfd_create"):
        fds = []
        try:
            for text in texts:
                fd = os.memfd_create("hookd-tls", getattr(os, "MFD_CLOEXEC", 0))
                fds.append(fd)
                data = text.encode()
                while data:
                    data = data[os.write(fd, data) :]
            yield tuple(f"/proc/self/fd/{fd}" for fd in fds)
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="hookd-tls-") as folder:
        paths = []
        for i, text in enumerate(texts):
            path = Path(folder) / str(i)
            path.touch(mode=0o600)
            path.write_text(text)
            paths.append(str(path))
        yield tuple(paths)
