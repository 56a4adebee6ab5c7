"""A locked-down broker for the security tests: TLS with client certificates, a password
file and the ACL shipped in deploy/mosquitto/acl (so the tests check what users get).

| fixture       | scope   | gives                                                         |
|---------------|---------|---------------------------------------------------------------|
| `pki`         | session | certificates: `main_ca`, `other_ca`, `broker`, `gateway`, …    |
| `passwords`   | session | user → password (outpost, simulator, gh-1, gh-2, fan-1)        |
| `secure_broker` | session | Mosquitto: plain `.port` and mTLS `.tls_port`, logins + ACL  |
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.security.pki import Pki
from tests.services import Mosquitto

REPO = Path(__file__).resolve().parents[2]
ACL = REPO / "deploy" / "mosquitto" / "acl"
USERS = ("outpost", "simulator", "gh-1", "gh-2", "fan-1")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    p = Pki(tmp_path_factory.mktemp("pki"))
    main, other = p.ca("main"), p.ca("other")
    local = "DNS:localhost,IP:127.0.0.1"
    return SimpleNamespace(
        dir=p.dir,
        main_ca=main,
        other_ca=other,
        broker=p.cert("broker", main, san=local),
        broker_expired=p.cert("broker-expired", main, san=local, expired=True),
        broker_elsewhere=p.cert("broker-elsewhere", main, san="DNS:broker.elsewhere.example"),
        gateway=p.cert("gateway", main, cn="outpost", client=True),
        gateway_expired=p.cert("gateway-expired", main, cn="outpost", client=True, expired=True),
        gateway_other_ca=p.cert("gateway-other", other, cn="outpost", client=True),
    )


@pytest.fixture(scope="session")
def passwords() -> dict[str, str]:
    return {user: f"{user}-{secrets.token_hex(8)}" for user in USERS}


def locked_broker(folder: Path, passwords: dict[str, str], ca: Path, cert: Path,
                  key: Path) -> Mosquitto:
    folder.mkdir(parents=True, exist_ok=True)
    passwd = Mosquitto.write_password_file(folder / "passwd", passwords)
    passwd.chmod(0o600)
    return Mosquitto(allow_anonymous=False, password_file=passwd, acl_file=ACL,
                     tls={"cafile": ca, "certfile": cert, "keyfile": key,
                          "require_certificate": True})


@pytest.fixture(scope="session")
def secure_broker(pki: SimpleNamespace, passwords: dict[str, str],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    folder = tmp_path_factory.mktemp("broker")
    with locked_broker(folder, passwords, pki.main_ca.crt, pki.broker.crt,
                       pki.broker.key) as broker:
        yield broker
