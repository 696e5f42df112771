"""ZeroMQ CURVE encryption and client authentication for the node's sockets.

Keys are ZeroMQ certificate files (``zmq.auth.create_certificates``): ``NAME.key``
holds the public key, ``NAME.key_secret`` both.  The node (server) loads its secret
certificate and a folder of allowed client public certificates; a client without an
allowed key is refused by the ZAP handler before a single message reaches the node.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq


@dataclass(frozen=True)
class CurveKeys:
    """A client's key pair and the server public key it expects to talk to."""

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def from_files(cls, client_secret_file: str | Path, server_public_file: str | Path) -> CurveKeys:
        public, secret = load_secret_certificate(client_secret_file)
        server_public, _ = load_certificate(server_public_file)
        return cls(public, secret, server_public)


def keygen(directory: str | Path, name: str, force: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public, give it to peers) and ``NAME.key_secret`` (keep it).

    An existing pair is kept unless ``force``: a new one would lock out every peer that
    holds the old public key.  ``name`` is a plain file name: ``../x`` wrote outside
    ``directory``, and ``a/b`` failed with a bare 'No such file or directory'."""
    import zmq.auth

    directory = Path(directory)
    if not name or name in (".", "..") or any(c in name for c in ("/", "\0", os.altsep or "/")):
        raise ValueError(f"key name {name!r} is not a plain file name (no '/', not '.' or '..'): it names "
                         f"NAME.key and NAME.key_secret in {directory}")  # fmt: skip
    existing = [p for p in (directory / f"{name}.key", directory / f"{name}.key_secret") if p.exists()]
    if existing and not force:
        raise ValueError(f"{existing[0]} exists: replacing it would lock out every peer holding the old "
                         f"public key (use --force to replace it)")  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the secret is never readable by others, not even for a moment
    try:
        public, secret = zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(old_umask)
    Path(public).chmod(0o644)  # the public one is for handing out
    return Path(public), Path(secret)


def load_certificate(path: str | Path) -> tuple[bytes, bytes | None]:
    import zmq.auth

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such key file (create one with `fpgaflow node keygen`)")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a ZeroMQ certificate ({exc})") from None
    from zmq.utils import z85

    for what, key in (("public-key", public), ("secret-key", secret)):
        if key is None:
            continue
        if len(key) != 40:  # Z85 of 32 bytes
            raise ValueError(f"{path}: {what} is {len(key)} characters, a CURVE key (Z85) has 40")
        try:
            z85.decode(key)
        except (ValueError, KeyError, TypeError, struct.error):  # a typo: ZeroMQ refused it in a setsockopt
            bad = next((chr(b) for b in key if b not in z85.Z85CHARS), None)
            why = f"the character {bad!r} is not one of its digits" if bad else "a group of 5 is more than 32 bits"
            raise ValueError(f"{path}: {what} is not Z85 ({why})") from None
    return public, secret


def client_curve(sock: zmq.Socket, keys: CurveKeys) -> None:
    sock.curve_publickey = keys.public
    sock.curve_secretkey = keys.secret
    sock.curve_serverkey = keys.server_public


def load_secret_certificate(path: str | Path) -> tuple[bytes, bytes]:
    """A key pair (``NAME.key_secret``); a public-only ``NAME.key`` given instead is named."""
    public, secret = load_certificate(path)
    if secret is None:
        raise ValueError(f"{path}: no secret key in this certificate (use NAME.key_secret)")
    return public, secret


def check_clients(clients_dir: str | Path, peers: str = "board") -> Path:
    """The folder of allowed clients' public keys, each of them read (ZeroMQ skips the whole
    folder over one bad file, refusing every client); ``peers``: who would be refused."""
    clients_dir = Path(clients_dir)
    if not clients_dir.is_dir():
        raise ValueError(f"{clients_dir}: no such folder of allowed client keys")
    keys = sorted(clients_dir.glob("*.key"))
    if not keys:
        raise ValueError(f"{clients_dir}: no client public keys (NAME.key): every {peers} would be refused")
    for key in keys:
        load_certificate(key)
    return clients_dir


def server_curve(sock: zmq.Socket, server_secret_file: str | Path) -> None:
    public, secret = load_secret_certificate(server_secret_file)
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_server = True


def start_authenticator(context: zmq.Context, clients_dir: str | Path, peers: str = "board"):
    """Allow only clients whose public certificates are in ``clients_dir`` (ZAP handler
    thread; it works only while connections are set up, never per message).  Each refused
    client is noted in its ``refused`` (address, reason), for the daemon to count and log:
    else a board with a wrong key is refused without a word on the node's side."""
    from zmq.auth.thread import ThreadAuthenticator

    class Authenticator(ThreadAuthenticator):
        def __init__(self, context: zmq.Context):
            super().__init__(context)
            self.refused: deque[tuple[str, str]] = deque(maxlen=1000)  # appended by the ZAP thread
            self._address = ""

        async def handle_zap_message(self, msg: list[bytes]) -> None:
            self._address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else "?"
            await super().handle_zap_message(msg)

        def _send_zap_reply(self, request_id: bytes, status_code: bytes, status_text: bytes, *args: Any) -> None:
            if status_code != b"200":
                self.refused.append((self._address, status_text.decode("utf-8", "replace")))
            super()._send_zap_reply(request_id, status_code, status_text, *args)

    clients_dir = check_clients(clients_dir, peers)
    auth = Authenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(clients_dir))
    return auth
