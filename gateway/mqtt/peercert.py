"""Which certificate a broker presents, for the log line about a failed TLS verification.

When the gateway refuses a broker's certificate, Python's ``ssl`` says why
("unable to get local issuer certificate") but not whose certificate it was,
and it shows no details of a certificate it did not verify. :func:`presented_by`
opens one more TLS connection that only looks (verification off, nothing sent
but the handshake: no MQTT, no password) and reads the subject and issuer from
the certificate's DER encoding (X.509, RFC 5280 §4.1) with :func:`names`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

from gateway.config.schema import MqttConfig

# The attribute types a broker certificate's names use in practice (RFC 4519).
_SHORT = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_BMP_STRING = 0x1E
_EXPLICIT_VERSION = 0xA0

Element = tuple[int, int, int]  # (tag, start of the content, end of the content)


def presented_by(cfg: MqttConfig, timeout: float = 3.0) -> str | None:
    """``subject CN=…, issuer CN=…`` of the certificate the broker presents, or None."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        if cfg.tls is not None and cfg.tls.cert:
            # A broker that requires a client certificate may end the handshake without one.
            context.load_cert_chain(cfg.tls.cert, cfg.tls.key)
        with socket.create_connection((cfg.host, cfg.port), timeout) as raw, \
                context.wrap_socket(raw, server_hostname=cfg.host) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
    if not der:
        return None
    found = names(der)
    return None if found is None else f"subject {found[0]}, issuer {found[1]}"


def names(der: bytes) -> tuple[str, str] | None:
    """``(subject, issuer)`` of a DER certificate as ``CN=…,O=…``; None if it is not one."""
    with contextlib.suppress(IndexError, ValueError):
        _, start, end = _element(der, 0)  # Certificate ::= SEQUENCE { tbsCertificate, …
        _, start, end = _element(der, start)  # TBSCertificate ::= SEQUENCE {
        fields = list(_children(der, start, end))
        if fields[0][0] == _EXPLICIT_VERSION:  # [0] version, absent for v1
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject, …
        return _name(der, fields[4]), _name(der, fields[2])
    return None


def _element(der: bytes, pos: int) -> Element:
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
        count = length & 0x7F
        length = int.from_bytes(der[pos:pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _children(der: bytes, start: int, end: int) -> Iterator[Element]:
    pos = start
    while pos < end:
        element = _element(der, pos)
        yield element
        pos = element[2]


def _name(der: bytes, name: Element) -> str:
    """A Name: a SEQUENCE of SETs of (type OID, value) SEQUENCEs."""
    parts = []
    for _, set_start, set_end in _children(der, name[1], name[2]):
        for _, start, end in _children(der, set_start, set_end):
            (_, oid_start, oid_end), (tag, value_start, value_end) = list(
                _children(der, start, end))[:2]
            oid = _oid(der[oid_start:oid_end])
            raw = der[value_start:value_end]
            value = raw.decode("utf-16-be" if tag == _BMP_STRING else "utf-8", "replace")
            parts.append(f"{_SHORT.get(oid, oid)}={value}")
    return ",".join(parts)


def _oid(content: bytes) -> str:
    first = content[0]
    numbers = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    return ".".join(map(str, numbers))
