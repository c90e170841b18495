"""The test PKI: a CA, the certificates it signs (serving, client or both), the service-account
signing key, and kubeconfigs that authenticate by token or by client certificate.

Made with the ``openssl`` command, so no crypto library is needed; everything lives in one
directory and is thrown away with it.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from harness.errors import ControlPlaneError

_OPENSSL_CNF = (
    "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = stepwise-test\n"
    "[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
)
DAYS = "3650"


class Pki:
    """A CA under ``directory`` (``ca.crt``, ``ca.key``) and what it signs there."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    def create(self) -> None:
        """The CA and the service-account signing key ``sa.key``."""
        if shutil.which("openssl") is None:
            raise ControlPlaneError("the `openssl` command is needed to make the test certificates")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "openssl.cnf").write_text(_OPENSSL_CNF, encoding="utf-8")
        self._openssl(
            "req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", "-newkey", "rsa:2048",
            "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=stepwise-test-ca",
            "-days", DAYS,
        )  # fmt: skip
        self._openssl("genrsa", "-out", "sa.key", "2048")
        for key in ("ca.key", "sa.key"):
            (self.directory / key).chmod(0o600)

    def issue_certificate(
        self, name: str, subject: str, *, client: bool = False, sans: Sequence[str] = ()
    ) -> tuple[Path, Path]:
        """``<name>.crt`` and ``.key``, signed by the CA: a client certificate (``subject``
        names the user and groups: ``/CN=user/O=group``), a serving one for the ``sans``
        (``IP:…``, ``DNS:…``), or both."""
        usages = (["clientAuth"] if client else []) + (["serverAuth"] if sans else [])
        extensions = [
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage = {','.join(usages)}",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid,issuer",
        ]
        if sans:
            extensions.append(f"subjectAltName = {','.join(sans)}")
        (self.directory / f"{name}.ext").write_text("\n".join(extensions) + "\n", encoding="utf-8")
        self._openssl(
            "req", "-new", "-config", "openssl.cnf", "-newkey", "rsa:2048", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
        )  # fmt: skip
        self._openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(secrets.randbits(63)), "-extfile", f"{name}.ext",
            "-out", f"{name}.crt", "-days", DAYS,
        )  # fmt: skip
        (self.directory / f"{name}.key").chmod(0o600)
        return self.directory / f"{name}.crt", self.directory / f"{name}.key"

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(
            ["openssl", *args], cwd=self.directory, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_file: Path,
    user: str,
    token: str = "",
    client_cert: tuple[Path, Path] | None = None,
    namespace: str = "default",
) -> Path:
    """A kubeconfig for ``user``, who authenticates by ``token`` or by ``client_cert``."""
    # JSON strings are valid YAML scalars: no YAML library needed.
    q = json.dumps
    if client_cert:
        credentials = (
            f"    client-certificate: {q(str(client_cert[0]))}\n"
            f"    client-key: {q(str(client_cert[1]))}\n"
        )
    else:
        credentials = f"    token: {q(token)}\n"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: stepwise-test\n  cluster:\n    server: {q(server)}\n"
        f"    certificate-authority: {q(str(ca_file))}\n"
        f"users:\n- name: {q(user)}\n  user:\n{credentials}"
        f"contexts:\n- name: {q(user)}\n  context:\n    cluster: stepwise-test\n"
        f"    user: {q(user)}\n    namespace: {q(namespace)}\n"
        f"current-context: {q(user)}\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path
