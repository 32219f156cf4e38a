"""Fixtures for the MCP client tests: the `sre-agent` binary under test, started over stdio by the
official Python `mcp` package (a second client, independent of rmcp)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sre_agent_bin() -> str:
    """The binary: `SRE_AGENT_BIN`, else `target/debug/sre-agent` (build it first with
    `cargo build -p sre-examples --bin sre-agent`)."""
    path = Path(os.environ.get("SRE_AGENT_BIN", ROOT / "target" / "debug" / "sre-agent"))
    if not path.is_file():
        pytest.fail(
            f"{path} does not exist: build it with `cargo build -p sre-examples --bin sre-agent` "
            "or point SRE_AGENT_BIN at it"
        )
    return str(path)
