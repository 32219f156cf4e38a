"""Shared fixtures: a toolkit over a fresh simulator, and LangChain's own fake chat model."""

import json
import re
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from sre_agent import SreToolkit


class FakeToolModel(GenericFakeChatModel):
    """LangChain's fake chat model, replaying scripted AIMessages, with bind_tools."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> "FakeToolModel":  # noqa: ARG002
        self.__dict__["bound_tools"] = tools
        return self


def model(*messages: AIMessage) -> FakeToolModel:
    return FakeToolModel(messages=iter(messages), disable_streaming=True)


def call(name: str, args: dict, id: str = "c1") -> AIMessage:
    return AIMessage("", tool_calls=[{"id": id, "name": name, "args": args, "type": "tool_call"}])


def image(tk: SreToolkit, ns: str, dep: str) -> str:
    return tk.native.deployment_images(ns, dep)[0][1]


@pytest.fixture
def sim():
    tk = SreToolkit(simulator="bad-release")
    yield tk
    tk.native.close()


@pytest.fixture
def cve():
    tk = SreToolkit(simulator="critical-cve")
    yield tk
    tk.native.close()


NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
