"""Suite-wide secret audit: every Envoy the tests start, every secret they use, checked once
at the end of the session (conftest's ``secrets_never_in_envoy_output``).

What counts as a leak: a secret access key, ExternalId, session token, IMDS session token or
container authorization token anywhere in what an
Envoy printed (log file and stdout/stderr), with two exceptions, both Envoy's own output and
documented in docs/observability.md (Secrets and Envoy's own logs):
- Envoy's config dumps at debug level print the plugin configuration, so secrets written
  inline in it show there (give them through the VM environment, or run the ``config``
  component at info);
- Envoy's router prints the headers of the Invoke it forwards at debug level, so the session
  token (``x-amz-security-token``) shows there (run the ``router`` component at info).
The filter itself never prints any of them, at any level; test_security checks that at
trace level with those two components at info nothing at all shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MIN_SECRET_LENGTH = 12  # shorter test values ("x") would match by accident


def log_entries(text: str) -> list[str]:
    """Envoy log entries: a line starting with '[' begins one; continuation lines (header
    dumps) belong to it."""
    entries: list[str] = []
    for line in text.splitlines():
        if line.startswith("[") or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return entries


def is_config_dump(entry: str) -> bool:
    first = entry.split("\n", 1)[0]
    return "][config]" in first and "config: {" in entry and "[wasm]" not in first


def is_router_header_dump(entry: str) -> bool:
    first = entry.split("\n", 1)[0]
    return "][router]" in first and "router decoding headers" in first


@dataclass
class Audit:
    envoys: list[Any] = field(default_factory=list)
    standins: list[Any] = field(default_factory=list)
    sts_proxies: list[Any] = field(default_factory=list)
    # IMDS and container stand-ins (ambient_standins.py): the credentials they handed out,
    # and the IMDS session tokens they issued.
    ambient_standins: list[Any] = field(default_factory=list)
    # value -> (description, is a session token)
    secrets: dict[str, tuple[str, bool]] = field(default_factory=dict)

    def add_secret(self, what: str, value: str | None, session_token: bool = False) -> None:
        if value and len(value) >= MIN_SECRET_LENGTH:
            self.secrets[value] = (what, session_token)

    def collect(self) -> dict[str, tuple[str, bool]]:
        for standin in self.standins:
            for secret in list(getattr(standin, "secrets", {}).values()):
                self.add_secret("Lambda stand-in secret access key", secret)
        for proxy in self.sts_proxies:
            for call in proxy.calls:
                self.add_secret("temporary secret access key", getattr(call, "secret_access_key", None))
                self.add_secret("session token", getattr(call, "session_token", None), session_token=True)
        for standin in self.ambient_standins:
            for minted in list(standin.minted):
                self.add_secret("ambient secret access key", minted.secret_access_key)
                self.add_secret("ambient session token", minted.session_token, session_token=True)
            for token in list(getattr(standin, "tokens", {})):
                # Sent as x-aws-ec2-metadata-token: like a session token, Envoy's router
                # prints it at debug level.
                self.add_secret("IMDS session token", token, session_token=True)
        return self.secrets

    def leaks(self) -> list[str]:
        secrets = self.collect()
        found: list[str] = []
        for envoy in self.envoys:
            for entry in log_entries(envoy.log()):
                for value, (what, is_token) in secrets.items():
                    if value not in entry:
                        continue
                    if is_config_dump(entry) or (is_token and is_router_header_dump(entry)):
                        continue
                    found.append(f"{what} in {envoy.log_path}: {entry[:300]}")
        return found


AUDIT = Audit()
