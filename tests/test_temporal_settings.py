"""The Temporal connection settings: read as the SDK reads them, each mistake named on one line.

Certificates are made here (`tests/certificates.py`); the environment is passed in,
so nothing leaks from the machine's. The handshake failures (a server certificate
the client refuses, a client certificate the server refuses) need a real server:
`tests/cluster/test_cluster_tls.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from temporalio.service import TLSConfig

from runtime.temporal_settings import TemporalSettingsError, connection_settings
from tests.certificates import Issued, TestCa


@pytest.fixture(scope="module")
def servers() -> TestCa:
    return TestCa("servers")


@pytest.fixture(scope="module")
def clients() -> TestCa:
    return TestCa("clients")


@pytest.fixture
def ca_file(servers: TestCa, tmp_path: Path) -> Path:
    return servers.write(tmp_path / "ca.pem")


@pytest.fixture
def client(clients: TestCa, tmp_path: Path) -> Issued:
    return clients.issue(tmp_path, "app", client=True)


def mutual_tls(ca_file: Path, client: Issued) -> dict[str, str]:
    return {
        "TEMPORAL_ADDRESS": "temporal.example:7233",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca_file),
        "TEMPORAL_TLS_SERVER_NAME": "frontend.temporal.test",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(client.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(client.key),
    }


@pytest.fixture(autouse=True)
def no_default_profile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `temporal.toml` of this machine's user plays a part (the SDK looks in the
    config folder of the process's own environment, whatever `env` says)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(TemporalSettingsError) as refused:
        connection_settings(env)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_without_settings_the_client_connects_to_localhost_in_plain() -> None:
    settings = connection_settings({})
    assert settings.connect_args == {"target_host": "localhost:7233"}
    assert (settings.address, settings.namespace, settings.uses_tls) == (
        "localhost:7233",
        "default",
        False,
    )


def test_an_api_key_turns_tls_on_with_the_system_cas() -> None:
    settings = connection_settings(
        {"TEMPORAL_ADDRESS": "eu-west-1.aws.api.temporal.io:7233", "TEMPORAL_API_KEY": "k"}
    )
    assert settings.connect_args["api_key"] == "k"
    assert settings.connect_args["tls"] is True
    assert settings.server_ca is None


def test_mutual_tls_from_the_environment_reads_every_file(ca_file: Path, client: Issued) -> None:
    settings = connection_settings(mutual_tls(ca_file, client))
    tls = settings.connect_args["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == ca_file.read_bytes()
    assert tls.domain == "frontend.temporal.test"
    assert tls.client_cert == client.cert.read_bytes()
    assert tls.client_private_key == client.key.read_bytes()
    assert str(settings.client_cert) == f"TEMPORAL_TLS_CLIENT_CERT_PATH {client.cert}"


def test_a_profile_file_carries_the_tls_paths(
    ca_file: Path, client: Issued, tmp_path: Path
) -> None:
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        '[profile.prod]\naddress = "temporal.example:7233"\nnamespace = "journeys"\n'
        f'[profile.prod.tls]\nserver_ca_cert_path = "{ca_file}"\n'
        f'client_cert_path = "{client.cert}"\nclient_key_path = "{client.key}"\n'
    )
    env = {"TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "prod"}

    settings = connection_settings(env)

    assert (settings.address, settings.namespace) == ("temporal.example:7233", "journeys")
    assert str(settings.client_cert) == f"[profile.prod.tls] client_cert_path {client.cert}"
    profile.write_text(profile.read_text().replace(str(client.key), str(tmp_path / "gone.key")))
    assert refusal(env) == (
        f"[profile.prod.tls] client_key_path {tmp_path / 'gone.key'}: no such file or directory"
    )


def test_a_missing_or_unreadable_file_is_named(ca_file: Path, client: Issued) -> None:
    missing = client.cert.with_name("missing.pem")
    assert refusal(
        {**mutual_tls(ca_file, client), "TEMPORAL_TLS_CLIENT_CERT_PATH": str(missing)}
    ) == (f"TEMPORAL_TLS_CLIENT_CERT_PATH {missing}: no such file or directory")
    folder = ca_file.parent
    assert refusal({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(folder)}) == (
        f"TEMPORAL_TLS_SERVER_CA_CERT_PATH {folder}: is a directory"
    )


def test_a_file_that_holds_no_certificate_is_refused(ca_file: Path, client: Issued) -> None:
    assert refusal(
        {**mutual_tls(ca_file, client), "TEMPORAL_TLS_CLIENT_CERT_PATH": str(client.key)}
    ) == (
        f"TEMPORAL_TLS_CLIENT_CERT_PATH {client.key}: it holds a PEM private key, not a certificate"
    )
    ca_file.write_text("hello\n")
    assert refusal({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca_file)}) == (
        f"TEMPORAL_TLS_SERVER_CA_CERT_PATH {ca_file}: it holds no PEM block (-----BEGIN …-----), "
        "not a certificate"
    )
    assert refusal({"TEMPORAL_TLS_SERVER_CA_CERT_DATA": "not pem"}) == (
        "TEMPORAL_TLS_SERVER_CA_CERT_DATA: it holds no PEM block (-----BEGIN …-----), "
        "not a certificate"
    )


def test_a_key_that_is_not_a_key_or_is_encrypted_is_refused(
    ca_file: Path, client: Issued, tmp_path: Path
) -> None:
    env = mutual_tls(ca_file, client)
    assert refusal({**env, "TEMPORAL_TLS_CLIENT_KEY_PATH": str(client.cert)}) == (
        f"TEMPORAL_TLS_CLIENT_KEY_PATH {client.cert}: it holds a PEM certificate, not a private key"
    )
    key = serialization.load_pem_private_key(client.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert refusal({**env, "TEMPORAL_TLS_CLIENT_KEY_PATH": str(encrypted)}) == (
        f"TEMPORAL_TLS_CLIENT_KEY_PATH {encrypted}: the key is encrypted; "
        "the SDK reads only unencrypted keys"
    )


def test_a_key_that_does_not_match_the_certificate_is_refused(
    ca_file: Path, client: Issued, clients: TestCa, tmp_path: Path
) -> None:
    other = clients.issue(tmp_path / "other", "app", client=True)
    assert refusal(
        {**mutual_tls(ca_file, client), "TEMPORAL_TLS_CLIENT_KEY_PATH": str(other.key)}
    ) == (
        f"TEMPORAL_TLS_CLIENT_KEY_PATH {other.key} does not match the certificate "
        f"TEMPORAL_TLS_CLIENT_CERT_PATH {client.cert}: give the key the certificate was issued for"
    )


def test_an_expired_client_certificate_is_refused(
    ca_file: Path, clients: TestCa, tmp_path: Path
) -> None:
    expired = clients.issue(tmp_path, "old", client=True, expired=True)
    message = refusal(mutual_tls(ca_file, expired))
    assert message.startswith(f"TEMPORAL_TLS_CLIENT_CERT_PATH {expired.cert}: ")
    assert "the certificate expired on " in message


def test_a_client_certificate_without_its_key_is_refused(ca_file: Path, client: Issued) -> None:
    env = mutual_tls(ca_file, client)
    del env["TEMPORAL_TLS_CLIENT_KEY_PATH"]
    assert refusal(env) == (
        "TEMPORAL_TLS_CLIENT_CERT_PATH is set but not TEMPORAL_TLS_CLIENT_KEY_PATH: "
        "mutual TLS needs both"
    )


@pytest.mark.parametrize("value", ["no", "yes", "on", "enabled"])
def test_tls_switch_values_the_sdk_would_take_for_on_are_refused(value: str) -> None:
    assert refusal({"TEMPORAL_TLS": value}) == (f"TEMPORAL_TLS {value!r}: expected true or false")


@pytest.mark.parametrize(("value", "on"), [("true", True), ("1", True), ("FALSE", False)])
def test_tls_switch_values_of_the_sdk(value: str, on: bool) -> None:
    assert connection_settings({"TEMPORAL_TLS": value}).uses_tls is on


def test_a_missing_profile_file_a_bad_one_and_an_unknown_profile_are_refused(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "temporal.toml"
    assert refusal({"TEMPORAL_CONFIG_FILE": str(missing)}) == (
        f"TEMPORAL_CONFIG_FILE {missing}: no such file"
    )
    missing.write_text("[profile.prod\n")
    assert refusal({"TEMPORAL_CONFIG_FILE": str(missing)}).startswith(
        f"TEMPORAL_CONFIG_FILE {missing}: Configuration loading error: TOML parse error at line 1"
    )
    missing.write_text('[profile.prod]\naddress = "x:1"\n')
    assert refusal({"TEMPORAL_CONFIG_FILE": str(missing), "TEMPORAL_PROFILE": "staging"}) == (
        f"TEMPORAL_CONFIG_FILE {missing}: Profile 'staging' not found"
    )


def test_without_a_profile_file_the_sdk_reads_the_temporal_clis(tmp_path: Path) -> None:
    folder = tmp_path / ".config" / "temporalio"
    folder.mkdir(parents=True)
    (folder / "temporal.toml").write_text('[profile.default]\naddress = "temporal.example:7233"\n')

    assert connection_settings({}).address == "temporal.example:7233"
    assert refusal({"TEMPORAL_PROFILE": "prod"}) == (
        "the default temporal.toml: Profile 'prod' not found"
    )
