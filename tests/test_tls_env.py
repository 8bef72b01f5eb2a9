"""Both clients trust the CA bundle named by ``SSL_CERT_FILE``, like httpx (issue 11, hole 6).

The emulator is reached over TLS through a relay on loopback whose certificate a private CA signed: with
the CA in ``SSL_CERT_FILE`` both clients talk to it; without, both fail with the hint to set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from prefect_openai_runs import AsyncRunsClient, RunsClient
from prefect_openai_runs.exceptions import UntrustedCertificateError
from prefect_openai_runs.testing import RunsEmulator


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:  # the CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A private CA (its certificate's path) and a server certificate and key for 127.0.0.1 it signed."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, None, ca_key)
    server = _certificate("127.0.0.1", server_key, ca.subject, ca_key)
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "server.pem").write_bytes(_pem(server))
    (folder / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def tls_url(runs_emulator: RunsEmulator, private_ca: tuple[Path, Path, Path]) -> Iterator[str]:
    """The emulator's base URL over TLS: a relay on loopback that terminates TLS with the CA's certificate."""
    _, certificate, key = private_ca
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    origin = runs_emulator.base_url.split("//", 1)[1].split("/", 1)[0]
    host, port = origin.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                secured = context.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):  # a client that does not trust the certificate leaves here
                client.close()
                continue
            upstream = socket.create_connection((host, int(port)))
            for source, sink in ((secured, upstream), (upstream, secured)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/v1"
    listener.close()


def _both_clients_create_a_thread(emulator: RunsEmulator, url: str) -> None:
    with RunsClient(api_key=emulator.api_key, base_url=url, timeout=5.0) as client:
        assert client.create_thread().id.startswith("thread_")

    async def create() -> str:
        async with AsyncRunsClient(api_key=emulator.api_key, base_url=url, timeout=5.0) as client:
            return (await client.create_thread()).id

    assert asyncio.run(create()).startswith("thread_")


def test_both_clients_trust_the_ca_bundle_of_ssl_cert_file(
    runs_emulator: RunsEmulator, tls_url: str, private_ca: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(private_ca[0]))
    _both_clients_create_a_thread(runs_emulator, tls_url)
    assert runs_emulator.counters.get("threads_created") == 2


@pytest.mark.parametrize("which", ["sync", "async"])
def test_without_the_ca_bundle_both_clients_refuse_and_say_what_to_set(
    runs_emulator: RunsEmulator, tls_url: str, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async def create_async() -> None:
        async with AsyncRunsClient(api_key=runs_emulator.api_key, base_url=tls_url, timeout=5.0) as client:
            await client.create_thread()

    started = time.monotonic()
    with pytest.raises(UntrustedCertificateError, match="SSL_CERT_FILE"):
        if which == "sync":
            with RunsClient(api_key=runs_emulator.api_key, base_url=tls_url, timeout=5.0) as client:
                client.create_thread()
        else:
            asyncio.run(create_async())
    assert not runs_emulator.counters.get("threads_created")
    assert time.monotonic() - started < 3, "sent again: no retry can make the certificate trusted"
