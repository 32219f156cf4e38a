"""`sre-agent mcp --scenario bad-release` driven over stdio by the official Python MCP SDK (`mcp`),
a client written independently of the Rust SDK the server uses: initialize, the tool list and its
annotations, a read tool, a write approved through the client's elicitation callback (applied and
verified: the deployment runs the previous image), a declined write (nothing changes), and
`--read-only` (no writes listed, a forged write call refused)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp.types as types
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client

pytestmark = pytest.mark.anyio

BAD = "ghcr.io/acme/shop-web:1.5.0"
GOOD = "ghcr.io/acme/shop-web:1.4.2"
WEB = {"namespace": "shop", "deployment": "web"}


class Human:
    """An elicitation callback that answers `action` and remembers each question."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.questions: list[str] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams), params
        schema = params.requested_schema
        assert schema["required"] == ["approve"], schema
        assert schema["properties"]["approve"]["type"] == "boolean", schema
        self.questions.append(params.message)
        if self.action == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action=self.action)


@asynccontextmanager
async def session(binary: str, *extra: str, human: Human | None = None) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=binary, args=["mcp", "--scenario", "bad-release", *extra])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, elicitation_callback=human) as s:
            await s.initialize()
            yield s


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def images(s: ClientSession) -> list[str]:
    """The deployment's current images, read through the server's own read tool."""
    result = await s.call_tool("k8s_get_deployment", WEB)
    assert not result.is_error, text(result)
    data = result.structured_content or {}
    return [c["image"] for c in data["images"]]


async def test_initialize_and_list_tools_with_annotations(sre_agent_bin: str) -> None:
    async with session(sre_agent_bin) as s:
        assert s.server_info is not None and s.server_info.name == "sre-agent"
        tools = {t.name: t for t in (await s.list_tools()).tools}
        find = tools["k8s_find_unhealthy"]
        assert find.annotations is not None and find.annotations.read_only_hint is True
        rollback = tools["k8s_rollback"]
        assert rollback.annotations is not None
        assert rollback.annotations.read_only_hint is False
        assert rollback.annotations.destructive_hint is True
        assert rollback.annotations.idempotent_hint is False
        assert tools["k8s_patch_image"].annotations.idempotent_hint is True
        schema = rollback.input_schema
        assert schema["additionalProperties"] is False, schema
        assert sorted(schema["required"]) == ["deployment", "namespace"], schema


async def test_read_tool_finds_the_crash_looping_release(sre_agent_bin: str) -> None:
    async with session(sre_agent_bin) as s:
        result = await s.call_tool("k8s_find_unhealthy", {})
        assert not result.is_error, text(result)
        assert "web" in text(result)
        workloads = (result.structured_content or {})["workloads"]
        assert any(w["namespace"] == "shop" and w["name"].startswith("web") for w in workloads), workloads


async def test_a_write_accepted_through_elicitation_is_applied_and_verified(sre_agent_bin: str) -> None:
    human = Human("accept")
    async with session(sre_agent_bin, human=human) as s:
        assert await images(s) == [BAD]
        result = await s.call_tool("k8s_rollback", WEB)
        assert not result.is_error, text(result)
        data = result.structured_content or {}
        assert data["applied"] is True, data
        assert data["verification"]["passed"] is True, data
        assert len(human.questions) == 1
        question = human.questions[0]
        assert "deployments.apps/shop/web@resourceVersion=" in question, question
        assert "diff:" in question and GOOD in question, question
        assert "expires:" in question, question
        assert await images(s) == [GOOD]


async def test_a_declined_write_changes_nothing(sre_agent_bin: str) -> None:
    human = Human("decline")
    async with session(sre_agent_bin, human=human) as s:
        result = await s.call_tool("k8s_rollback", WEB)
        assert result.is_error, text(result)
        assert "declined" in text(result) and "nothing was applied" in text(result), text(result)
        assert (result.structured_content or {})["applied"] is False
        assert len(human.questions) == 1
        assert await images(s) == [BAD]


async def test_a_client_without_elicitation_is_told_how_to_enable_approvals(sre_agent_bin: str) -> None:
    async with session(sre_agent_bin) as s:
        result = await s.call_tool("k8s_rollback", WEB)
        assert result.is_error
        assert "elicitation" in text(result) and "--approve auto" in text(result), text(result)
        assert await images(s) == [BAD]


async def test_read_only_lists_no_writes_and_refuses_a_forged_one(sre_agent_bin: str) -> None:
    human = Human("accept")
    async with session(sre_agent_bin, "--read-only", human=human) as s:
        tools = (await s.list_tools()).tools
        assert tools and all(t.annotations and t.annotations.read_only_hint for t in tools)
        assert "k8s_rollback" not in {t.name for t in tools}
        with pytest.raises(MCPError) as refused:
            await s.call_tool("k8s_rollback", WEB)
        assert "read-only" in str(refused.value)
        assert human.questions == []
        assert await images(s) == [BAD]
