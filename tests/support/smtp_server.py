"""The SMTP server that `.ci/run` starts for `tests/smtp.rs` (aiosmtpd).

Listens on 127.0.0.1 on a free port, writes the port to `--port-file`
once it accepts connections, and stores each message it accepts as one
`.eml` file (the bytes received, unchanged) in `--maildir`. Runs until
SIGTERM or SIGINT.

With `--cert`, `--key`, `--user` and `--password` it also listens on two
more free ports, both requiring a login with that user and password
(AUTH PLAIN or LOGIN): one speaking TLS from the first byte ("SMTPS"),
one requiring STARTTLS before anything else. The port file then holds
three ports, `plain implicit starttls`, on one line. The plain port never
offers STARTTLS or AUTH.

Some recipients are answered with errors, so the tests see real SMTP
replies (the local part decides, any domain):

    unknown@  550 5.1.1 no such mailbox       (RCPT)
    nobody@   550 bare, no enhanced status    (RCPT)
    blocked@  554 5.7.1 refused by policy     (RCPT)
    busy@     451 4.3.0 try again later       (RCPT)
"""

import argparse
import os
import signal
import socket
import threading
import time
import uuid

import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

REPLIES = {
    "unknown": "550 5.1.1 Recipient address rejected: User unknown",
    "nobody": "550 Mailbox unavailable",
    "blocked": "554 5.7.1 Message refused by policy",
    "busy": "451 4.3.0 Temporary local problem, try again later",
}


class Handler:
    def __init__(self, maildir):
        self.maildir = maildir

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rsplit("@", 1)[0].lower()
        if local in REPLIES:
            return REPLIES[local]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{uuid.uuid4().hex}.eml"
        tmp = os.path.join(self.maildir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        os.rename(tmp, os.path.join(self.maildir, name))
        return "250 2.0.0 Message accepted"


class Authenticator:
    """Accepts exactly one user name and password."""

    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        # handled=False: aiosmtpd answers 235 or 535 itself.
        return AuthResult(success=ok, handled=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    os.makedirs(args.maildir, exist_ok=True)

    handler = Handler(args.maildir)
    controllers = [
        Controller(handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    ]
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        login = dict(
            authenticator=Authenticator(args.user, args.password),
            auth_required=True,
        )
        # SMTPS: the whole connection is TLS, so AUTH needs no STARTTLS
        # first (aiosmtpd only counts STARTTLS as "TLS" for that check).
        controllers.append(
            Controller(
                handler,
                hostname="127.0.0.1",
                port=free_port(),
                enable_SMTPUTF8=True,
                ssl_context=context,
                server_hostname="localhost",
                auth_require_tls=False,
                **login,
            )
        )
        controllers.append(
            Controller(
                handler,
                hostname="127.0.0.1",
                port=free_port(),
                enable_SMTPUTF8=True,
                tls_context=context,
                require_starttls=True,
                auth_require_tls=True,
                **login,
            )
        )
    for controller in controllers:
        controller.start()  # returns once the server answers
    with open(args.port_file + ".tmp", "w") as f:
        f.write(" ".join(str(c.port) for c in controllers) + "\n")
    os.rename(args.port_file + ".tmp", args.port_file)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):  # wakes up to let the signal handlers run
        pass
    for controller in controllers:
        controller.stop()


if __name__ == "__main__":
    main()
