"""Listener TLS without sockets: SNI choice, wildcards, config checks, file watching,
and a context pair driven over memory BIOs (SNI switch, rotation, ALPN)."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError

from gateway.config import ListenerTlsConfig, load_config_text
from gateway.tls.checks import tls_file_issues
from gateway.tls.files import WatchedFiles
from gateway.tls.server import ListenerTls, ServedCertificate, name_matches, pick_certificate
from tests.support.certs import CertificateAuthority

SERVED = (
    ServedCertificate("d.pem", "d.key", ()),
    ServedCertificate("w.pem", "w.key", ("*.example.com",)),
    ServedCertificate("e.pem", "e.key", ("api.example.com", "shop.test")),
)


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("api.example.com", 2),  # the exact name wins over the wildcard listed before it
        ("API.Example.com.", 2),
        ("www.example.com", 1),
        ("a.b.example.com", 0),
        ("example.com", 0),
        ("shop.test", 2),
        ("", 0),
        (None, 0),
    ],
)
def test_pick_certificate(name: str | None, index: int) -> None:
    assert pick_certificate(SERVED, name) == index


def test_wildcard_needs_a_label() -> None:
    assert not name_matches("*.example.com", ".example.com")
    assert name_matches("*.example.com", "x.example.com")


@pytest.mark.parametrize(
    "config",
    [
        {"cert": "a.pem"},
        {},
        {"cert": "a.pem", "key": "a.key", "min_version": "1.1"},
        {"cert": "a.pem", "key": "a.key", "min_version": "1.3", "max_version": "1.2"},
        {"cert": "a.pem", "key": "a.key", "alpn": ["h3"]},
        {"cert": "a.pem", "key": "a.key", "alpn": []},
    ],
)
def test_bad_listener_tls_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ListenerTlsConfig.model_validate(config)


def test_watched_files_report_each_change_once_per_interval(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "cert.pem"
    path.write_text("one")
    files = WatchedFiles([str(path)], 1.0, clock=lambda: now[0])
    path.write_text("two!")
    assert not files.changed()  # not yet looked at: the interval has not passed
    now[0] = 1.0
    assert files.changed()
    now[0] = 2.0
    assert not files.changed()
    path.unlink()
    now[0] = 3.0
    assert files.changed()  # gone counts as a change; loading it then fails and is kept out


def _handshake(server: ssl.SSLContext, server_name: str | None, ca: Path) -> ssl.SSLObject:
    client_ctx = ssl.create_default_context(cafile=str(ca))
    client_ctx.check_hostname = False
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    peer = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, peer):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    return client


def test_sni_switch_rotation_and_alpn_over_memory(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    ca_file = ca.write(tmp_path)
    default, shop = ca.issue("default"), ca.issue(dns=["shop.test"])
    default.write(tmp_path, "default")
    shop.write(tmp_path, "shop")
    config = ListenerTlsConfig.model_validate(
        {
            "cert": "default.pem",
            "key": "default.key",
            "certificates": [
                {"cert": "shop.pem", "key": "shop.key", "server_names": ["shop.test"]}
            ],
            "reload_interval": 0,
        }
    )
    tls = ListenerTls("public", config, lambda p: tmp_path / p)
    first = _handshake(tls.context, "shop.test", ca_file)
    assert first.getpeercert(binary_form=True) == shop.cert.public_bytes(Encoding.DER)
    assert first.selected_alpn_protocol() == "h2"
    other = _handshake(tls.context, None, ca_file)
    assert other.getpeercert(binary_form=True) == default.cert.public_bytes(Encoding.DER)
    rotated = ca.issue(dns=["shop.test"])
    rotated.write(tmp_path, "shop")
    again = _handshake(tls.context, "shop.test", ca_file)
    assert again.getpeercert(binary_form=True) == rotated.cert.public_bytes(Encoding.DER)
    assert tls.reloads == 1


def test_tls_files_are_checked_at_load_with_their_place(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    ca.write(tmp_path)
    good = ca.issue("server")
    good.write(tmp_path, "server")
    (tmp_path / "other.key").write_bytes(ca.issue().key_pem)
    loaded = load_config_text(
        """
listeners:
  - {name: ok, address: "127.0.0.1:1", tls: {cert: server.pem, key: server.key}}
  - {name: mismatched, address: "127.0.0.1:2", tls: {cert: server.pem, key: other.key}}
clusters:
  - name: ok
    endpoints: [{address: "127.0.0.1:3"}]
    tls: {ca: ca.pem, cert: server.pem, key: server.key}
  - {name: missing, endpoints: [{address: "127.0.0.1:3"}], tls: {ca: nowhere.pem}}
""",
        base_dir=tmp_path,
    )
    issues = tls_file_issues(loaded)
    assert [issue.where for issue in issues] == ["listeners[1].tls", "clusters[1].tls"]
    assert "KEY_VALUES_MISMATCH" in issues[0].message
    assert "No such file" in issues[1].message
