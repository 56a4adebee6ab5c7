"""Certificates for the security tests, made with the ``openssl`` command (Debian's 3.0).

``Pki(folder).ca("main")`` makes a CA; ``pki.cert("broker", ca, san=...)`` a server
certificate, ``client=True`` a client one; ``expired=True`` one whose validity ended
yesterday. OpenSSL 3.0's ``x509 -req`` cannot set dates in the past (``-not_before``
arrived in 3.4), but ``openssl ca`` takes ``-startdate``/``-enddate``, so expired
certificates go through a throw-away ``openssl ca`` database.
P-256 keys: about 1 ms each, against tens of ms for RSA.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Cert:
    crt: Path
    key: Path


def openssl(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True,
                            text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"openssl {' '.join(map(str, args))}:\n{result.stderr}")


class Pki:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        folder.mkdir(parents=True, exist_ok=True)

    def ca(self, name: str) -> Cert:
        crt, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        openssl("req", "-x509", *KEY, "-days", "3", "-subj", f"/CN=Outpost test CA {name}",
                "-keyout", key, "-out", crt,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        return Cert(crt, key)

    def cert(self, name: str, ca: Cert, *, cn: str | None = None, san: str | None = None,
             client: bool = False, expired: bool = False) -> Cert:
        crt, key, csr = (self.dir / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
        openssl("req", *KEY, "-subj", f"/CN={cn or name}", "-keyout", key, "-out", csr,
                cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        lines = ["basicConstraints=CA:FALSE",
                 f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
        if san:
            lines.append(f"subjectAltName={san}")
        ext.write_text("\n".join(lines) + "\n")
        if not expired:
            openssl("x509", "-req", "-in", csr, "-CA", ca.crt, "-CAkey", ca.key,
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt, cwd=self.dir)
            return Cert(crt, key)
        db = self.dir / f"{name}-ca"
        db.mkdir(exist_ok=True)
        (db / "index.txt").write_text("")
        (db / "serial").write_text("1000\n")
        (db / "ca.cnf").write_text(
            "[ca]\ndefault_ca = here\n[here]\n"
            f"database = {db}/index.txt\nnew_certs_dir = {db}\nserial = {db}/serial\n"
            "default_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n")
        day = dt.timedelta(days=1)
        now = dt.datetime.now(dt.UTC)
        start, end = ((now - n * day).strftime("%Y%m%d%H%M%SZ") for n in (3, 1))
        openssl("ca", "-batch", "-notext", "-config", db / "ca.cnf", "-cert", ca.crt,
                "-keyfile", ca.key, "-in", csr, "-out", crt, "-startdate", start,
                "-enddate", end, "-extfile", ext, cwd=self.dir)
        return Cert(crt, key)
