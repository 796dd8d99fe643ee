"""DKIM of mailed reports (RFC 8460 §3): verified against keys in the lab DNS, the result
stored with the report; unsigned reports are kept and flagged, or refused by setting."""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mtasts.config import Settings
from mtasts.reports.smtp import dkim_dns, verify_dkim
from tests.hosting.serving import ZONE, Running, running
from tests.lab import World
from tests.lab.ports import free_port
from tests.reports.test_durability import mail
from tests.reports.test_routes import host

pytestmark = pytest.mark.lab

DOMAIN = "dkim.reports.lab.test"
SIGNER = "mailer.example"


@pytest.fixture(scope="module")
def key(lab_world: World) -> bytes:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    chunks = " ".join(f'"{record[i : i + 250]}"' for i in range(0, len(record), 250))
    lab_world.zone.set(f"sel._domainkey.{SIGNER}", "TXT", [chunks])
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def signed(message: bytes, key: bytes) -> bytes:
    sig = dkim.sign(message, b"sel", SIGNER.encode(), key, include_headers=[b"from", b"subject"])
    return bytes(sig) + message


def test_verify_pass_fail_none(lab_world: World, key: bytes) -> None:
    lookup = dkim_dns([lab_world.nameserver])
    message = mail(DOMAIN, 1)
    good = signed(message, key)
    assert verify_dkim(good, lookup) == "pass"
    assert verify_dkim(good.replace(b"TLS report attached.", b"TLS report altered!!"), lookup) == (
        "fail"
    )
    assert verify_dkim(message, lookup) == "none"
    unknown_key = good.replace(b"s=sel", b"s=gone")
    assert verify_dkim(unknown_key, lookup) == "fail"


def _send(port: int, message: bytes) -> tuple[int, bytes]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.ehlo("mailer.example")
        smtp.mail(f"reports@{SIGNER}")
        smtp.rcpt(f"tlsrpt@{ZONE}")
        return smtp.data(message)


@pytest.fixture(params=[True, False], ids=["keep-unsigned", "signed-only"])
def app(request: pytest.FixtureRequest, tmp_path: Path, lab_world: World) -> Iterator[Running]:
    settings = Settings(
        data_dir=tmp_path,
        zone=ZONE,
        nameservers=(lab_world.nameserver,),
        smtp_listen=f"127.0.0.1:{free_port()}",
        keep_unsigned_reports=request.param,
    )
    with running(settings) as r:
        host(r, lab_world, [DOMAIN])
        yield r


def test_receiver_stores_the_dkim_result(app: Running, key: bytes) -> None:
    port = int(app.service.settings.smtp_listen.rsplit(":", 1)[1])
    keep = app.service.settings.keep_unsigned_reports
    assert _send(port, signed(mail(DOMAIN, 10), key))[0] == 250
    code, text = _send(port, mail(DOMAIN, 11))
    if keep:
        assert code == 250
    else:
        assert code == 550 and b"DKIM none" in text
    with app.client() as c:
        reports = c.get(f"/api/v1/domains/{DOMAIN}/reports").json()["reports"]
    by_id = {r["report_id"]: r["dkim"] for r in reports}
    expected = {"mailer.example-10": "pass"} | ({"mailer.example-11": "none"} if keep else {})
    assert by_id == expected
