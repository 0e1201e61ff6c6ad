"""Fixtures for the real-server tests: a trustme CA and a certificate for the test hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme
from rollout_itest import HOST, SUBDOMAIN


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> Any:
    """A certificate for the test host, its subdomain and 127.0.0.1."""
    return ca.issue_cert(HOST, SUBDOMAIN, "127.0.0.1")


@pytest.fixture
def cacert(ca: trustme.CA, tmp_path: Path) -> Path:
    """The CA as a PEM file, as a plan's cacert names it."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path
