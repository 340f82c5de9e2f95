"""The Temporal connection settings: read as the SDK reads them, checked before connecting.

`temporalio.envconfig` reads the environment (TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_*) over a
profile (TEMPORAL_PROFILE, default `default`) of a TOML file
(TEMPORAL_CONFIG_FILE, default `~/.config/temporalio/temporal.toml`), as the
Temporal CLI does. Some mistakes it lets through silently or reports as a
Rust error deep in the first connection; here each one stops the start with
one line naming the setting and what is wrong:

Before connecting (`connection_settings`):
- TEMPORAL_CONFIG_FILE names no file (the SDK ignores it), the file is not
  TOML, or it has no such profile;
- TEMPORAL_TLS is neither true nor false (the SDK takes `no` for "on");
- a TLS file is missing or unreadable; a CA or certificate file holds no
  certificate; a key file holds no key, or an encrypted one;
- a client certificate without its key (or the other way round), a key that
  does not match its certificate, a certificate out of its validity dates.

When the server answers (`tls_refusal`, from the SDK's error):
- its certificate is not signed by the trusted CA, or not for the server name;
- it does not speak TLS;
- it wants a client certificate (mutual TLS), or refuses the one given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, DataSource
from temporalio.service import TLSConfig

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_PROFILE = "default"

TLS_SWITCH_VALUES = frozenset({"true", "1", "false", "0"})
"""What TEMPORAL_TLS may say (any case); the SDK takes anything else for "on"."""

CLOSED_AFTER_HANDSHAKE = re.compile(
    r"CertificateRequired|BadCertificate|UnknownCA|CertificateUnknown|AccessDenied|"
    r"DecryptError|broken pipe|reset|connection closed|Canceled"
)
"""How the SDK reports a server that ended the connection once the TLS handshake was done:
what a server under mutual TLS does to a client without an acceptable certificate. Under
TLS 1.3 the client's side of the handshake is over by then, so the server's alert
(`CertificateRequired`, `UnknownCA`…) may or may not be read before the socket closes:
both are taken for a refusal of the client's certificate (or of its absence)."""


class TemporalSettingsError(ValueError):
    """A Temporal connection setting is wrong; the message names it and says why."""


@dataclass(frozen=True)
class TlsFile:
    """One piece of TLS material and the setting it came from, to name it in messages.

    Attributes:
        setting: The environment variable or profile key, e.g.
            `TEMPORAL_TLS_CLIENT_CERT_PATH` or `[profile.prod.tls] client_cert_path`.
        path: The file, when the setting names one (not inline data).
    """

    setting: str
    path: Path | None

    def __str__(self) -> str:
        return f"{self.setting} {self.path}" if self.path else self.setting


@dataclass(frozen=True)
class ConnectionSettings:
    """What `Client.connect` gets, and where its TLS settings came from.

    Attributes:
        connect_args: Keyword arguments of `Client.connect` (target_host,
            namespace, api_key, tls, rpc_metadata), files already read.
        server_ca: The CA certificate setting, None for the system's CAs.
        client_cert: The client certificate setting (mutual TLS), if any.
        server_name_setting: The setting that names the server, if any.
    """

    connect_args: dict[str, Any]
    server_ca: TlsFile | None = None
    client_cert: TlsFile | None = None
    server_name_setting: str | None = None

    @property
    def address(self) -> str:
        """`host:port` of the server."""
        return str(self.connect_args.get("target_host", DEFAULT_ADDRESS))

    @property
    def namespace(self) -> str:
        """The namespace the client works in."""
        return str(self.connect_args.get("namespace", "default"))

    @property
    def server_name(self) -> str | None:
        """The name the client asks the server's certificate to hold, if set."""
        tls = self.connect_args.get("tls")
        return tls.domain if isinstance(tls, TLSConfig) else None

    @property
    def uses_tls(self) -> bool:
        """Whether the client connects with TLS."""
        return self.connect_args.get("tls", False) is not False


def connection_settings(env: Mapping[str, str] | None = None) -> ConnectionSettings:
    """Read the connection settings from the environment and the profile file, and check them.

    Args:
        env: The environment (default: this process's).

    Raises:
        TemporalSettingsError: a setting is wrong (see the module's docstring).
    """
    env = dict(os.environ if env is None else env)
    names = _SettingNames(env)
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise TemporalSettingsError(f"TEMPORAL_CONFIG_FILE {config_file}: no such file")
    try:
        profile = ClientConfigProfile.load(override_env_vars=env)
    except RuntimeError as error:  # the SDK's ConfigError: bad TOML, unknown profile
        raise TemporalSettingsError(f"{names.profile_file}: {_one_line(error)}") from None
    switch = env.get("TEMPORAL_TLS")
    if switch is not None and switch.strip().lower() not in TLS_SWITCH_VALUES:
        raise TemporalSettingsError(f"TEMPORAL_TLS {switch!r}: expected true or false")
    tls = profile.tls
    server_ca = client_cert = server_name_setting = None
    if tls is not None and tls.disabled is not True:
        server_ca, client_cert = _check_tls(tls, names)
        if tls.server_name:
            server_name_setting = names.setting("server_name", None)
    return ConnectionSettings(
        {"target_host": DEFAULT_ADDRESS, **profile.to_client_connect_config()},
        server_ca=server_ca,
        client_cert=client_cert,
        server_name_setting=server_name_setting,
    )


def tls_refusal(error: BaseException, settings: ConnectionSettings) -> str | None:
    """Why the server and the client did not agree on TLS, naming the setting to fix.

    Args:
        error: What `Client.connect` raised.
        settings: The settings it connected with.

    Returns:
        One line, or None when the failure is not about TLS (e.g. the server is down).
    """
    text = str(error)
    where = f"Temporal at {settings.address}"
    if "NotValidForName" in text:
        presented = text.partition("presented:")[2]
        names = ", ".join(re.findall(r'DnsName\(\\*"([^"\\]+)', presented)) or "other names"
        asked = (
            f"{settings.server_name}, from {settings.server_name_setting}"
            if settings.server_name_setting
            else f"{settings.address.rpartition(':')[0]}, the address's host"
        )
        return (
            f"{where}: its certificate is for {names}, not {asked}; "
            "set TEMPORAL_TLS_SERVER_NAME to a name of the certificate"
        )
    if "UnknownIssuer" in text:
        trusted = (
            f"the CA of {settings.server_ca}"
            if settings.server_ca
            else "a CA this machine trusts (no TEMPORAL_TLS_SERVER_CA_CERT_PATH)"
        )
        return (
            f"{where}: its certificate is not signed by {trusted}; set "
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH to the CA certificate that signed it"
        )
    if "InvalidCertificate" in text:
        reason = re.search(r"InvalidCertificate\((\w+)", text)
        return f"{where}: its certificate is refused ({reason.group(1) if reason else text})"
    if settings.uses_tls and "InvalidContentType" in text:
        return (
            f"{where} does not answer in TLS: it serves plain connections; turn TLS off "
            "(TEMPORAL_TLS=false) or check the address"
        )
    if not settings.uses_tls or not CLOSED_AFTER_HANDSHAKE.search(text):
        return None
    if settings.client_cert is not None:
        return (
            f"{where} refused the client certificate {settings.client_cert}; "
            "use one signed by a CA the server trusts for clients"
        )
    if "api_key" in settings.connect_args:  # Temporal Cloud with an API key wants no certificate
        return None
    return (
        f"{where} requires a client certificate (mutual TLS); set "
        "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"
    )


class _SettingNames:
    """The name of each setting as the user wrote it: an environment variable, or a key
    of the profile file."""

    ENVIRONMENT = {
        "server_ca_cert": ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_DATA"),
        "client_cert": ("TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_DATA"),
        "client_key": ("TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_CLIENT_KEY_DATA"),
        "server_name": ("TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS_SERVER_NAME"),
    }

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.profile = env.get("TEMPORAL_PROFILE") or DEFAULT_PROFILE
        config_file = env.get("TEMPORAL_CONFIG_FILE")
        self.profile_file = (
            f"TEMPORAL_CONFIG_FILE {config_file}" if config_file else "the default temporal.toml"
        )

    def setting(self, key: str, source: DataSource | None) -> str:
        """How to name the setting `key` (`client_cert`…) whose value is `source`
        (None: a path not given)."""
        by_path = source is None or isinstance(source, Path)
        path_variable, data_variable = self.ENVIRONMENT[key]
        variable = path_variable if by_path else data_variable
        if self._env.get(variable):
            return variable
        suffix = "" if key == "server_name" else ("_path" if by_path else "_data")
        return f"[profile.{self.profile}.tls] {key}{suffix}"

    def file(self, key: str, source: DataSource) -> TlsFile:
        """The setting `key` and the file it names (None for inline data)."""
        return TlsFile(self.setting(key, source), source if isinstance(source, Path) else None)

    def half_a_pair(self, cert: DataSource | None, key: DataSource | None) -> str:
        """The message for a client certificate without its key, or a key without its
        certificate, naming the missing one as the given one is named."""
        if key is None:
            given, missing, source = "client_cert", "client_key", cert
        else:
            given, missing, source = "client_key", "client_cert", key
        given_name = self.setting(given, source)
        if given_name.startswith("TEMPORAL_"):
            missing_name = self.ENVIRONMENT[missing][0]
        else:
            missing_name = f"{missing}_path"
        return f"{given_name} is set but not {missing_name}: mutual TLS needs both"


def _check_tls(tls: ClientConfigTLS, names: _SettingNames) -> tuple[TlsFile | None, TlsFile | None]:
    """Check the TLS material; returns the CA and client certificate settings."""
    server_ca = None
    if tls.server_root_ca_cert is not None:
        server_ca = names.file("server_ca_cert", tls.server_root_ca_cert)
        _certificates(server_ca, _read(server_ca, tls.server_root_ca_cert))
    if tls.client_cert is None and tls.client_private_key is None:
        return server_ca, None
    if tls.client_cert is None or tls.client_private_key is None:
        raise TemporalSettingsError(names.half_a_pair(tls.client_cert, tls.client_private_key))
    client_cert = names.file("client_cert", tls.client_cert)
    client_key = names.file("client_key", tls.client_private_key)
    certificate = _certificates(client_cert, _read(client_cert, tls.client_cert))[0]
    _check_validity(client_cert, certificate)
    key = _private_key(client_key, _read(client_key, tls.client_private_key))
    if _public_bytes(key.public_key()) != _public_bytes(certificate.public_key()):
        raise TemporalSettingsError(
            f"{client_key} does not match the certificate {client_cert}: "
            "give the key the certificate was issued for"
        )
    return server_ca, client_cert


def _read(where: TlsFile, source: DataSource) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str):
        return source.encode()
    try:
        return source.read_bytes()
    except OSError as error:
        raise TemporalSettingsError(f"{where}: {_os_reason(error)}") from None


def _certificates(where: TlsFile, data: bytes) -> list[x509.Certificate]:
    """The PEM certificates of a file (a CA bundle may hold several)."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TemporalSettingsError(f"{where}: {_pem_content(data)}, not a certificate") from None


def _private_key(where: TlsFile, data: bytes) -> Any:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # "Password was not given but private key is encrypted"
        raise TemporalSettingsError(
            f"{where}: the key is encrypted; the SDK reads only unencrypted keys"
        ) from None
    except ValueError:
        raise TemporalSettingsError(f"{where}: {_pem_content(data)}, not a private key") from None


def _check_validity(where: TlsFile, certificate: x509.Certificate) -> None:
    now = datetime.now(UTC)
    if certificate.not_valid_after_utc < now:
        raise TemporalSettingsError(
            f"{where}: the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
        )
    if certificate.not_valid_before_utc > now:
        raise TemporalSettingsError(
            f"{where}: the certificate is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M}Z"
        )


def _public_bytes(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _pem_content(data: bytes) -> str:
    """What a file holds, as a reader would describe it: `a PEM private key`, `no PEM block`."""
    labels = re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
    if not labels:
        return "it holds no PEM block (-----BEGIN …-----)"
    return f"it holds a PEM {labels[0].decode().lower()}"


def _os_reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def _one_line(error: BaseException) -> str:
    """An SDK configuration error on one line (a TOML parse error comes with a code excerpt)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    excerpt = re.compile(r"^(\d+\s*)?\|")
    return " ".join(line for line in lines if not excerpt.match(line))
