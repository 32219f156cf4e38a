"""create_sre_agent: the Rust sre-core loop driven by a LangChain chat model."""

import asyncio

import pytest
from conftest import call, image, model
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from sre_agent import create_sre_agent

ROLLBACK = {"namespace": "shop", "deployment": "web"}


def run(agent, text="fix shop/web"):
    return agent.invoke({"messages": [HumanMessage(text)]})["messages"]


def test_read_write_final_with_approval(sim):
    fake = model(call("k8s_find_unhealthy", {}), call("k8s_rollback", ROLLBACK, "c2"), AIMessage("rolled back"))
    agent = create_sre_agent(fake, approver=lambda r: {"decisions": [{"type": "approve"}]}, toolkit=sim)
    msgs = run(agent)
    assert isinstance(msgs[0], HumanMessage)
    assert msgs[-1].content == "rolled back"
    tools = [m for m in msgs if isinstance(m, ToolMessage)]
    assert "CrashLoopBackOff" in tools[0].content
    assert "applied: deployment shop/web: roll back" in tools[1].content
    assert image(sim, "shop", "web") == "ghcr.io/acme/shop-web:1.4.2"
    assert agent.last_report["actions"][0]["decision"]["by"] == "python:approver"
    assert "bound_tools" in fake.__dict__ and len(fake.__dict__["bound_tools"]) == 14


def test_rejected_and_fail_closed(sim):
    for approver in [lambda r: {"decisions": [{"type": "reject", "message": "freeze"}]}, None]:
        fake = model(call("k8s_rollback", ROLLBACK), AIMessage("could not"))
        msgs = run(create_sre_agent(fake, approver=approver, toolkit=sim))
        denied = [m for m in msgs if isinstance(m, ToolMessage)][0]
        assert denied.status == "error" and "denied" in denied.content
        assert image(sim, "shop", "web") == "ghcr.io/acme/shop-web:1.5.0"


def test_unknown_tools_and_tool_errors_go_back_to_the_model(sim):
    fake = model(
        call("k8s_delete_everything", {}),
        call("k8s_describe_pod", {"namespace": "shop", "pod": "nope"}, "c2"),
        AIMessage("done"),
    )
    msgs = run(create_sre_agent(fake, toolkit=sim))
    errors = [m for m in msgs if isinstance(m, ToolMessage)]
    assert all(m.status == "error" for m in errors)
    assert "unknown tool" in errors[0].content
    assert "not found" in errors[1].content
    assert msgs[-1].content == "done"


class Boom(GenericFakeChatModel):
    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, *args, **kwargs):
        raise RuntimeError("model service is down")


def test_a_raising_model_propagates_its_message(sim):
    agent = create_sre_agent(Boom(messages=iter([])), toolkit=sim)
    with pytest.raises(RuntimeError, match="model service is down"):
        run(agent)


def test_max_steps_stops_the_loop(sim):
    fake = model(*[call("k8s_list_pods", {"namespace": "shop"}, f"c{i}") for i in range(10)])
    agent = create_sre_agent(fake, toolkit=sim, max_steps=2)
    run(agent)
    assert agent.last_report["outcome"]["status"] == "max_steps"
    assert agent.last_report["steps"] == 2


def test_async_and_role_dict_input(sim):
    fake = model(call("k8s_list_pods", {"namespace": "shop"}), AIMessage("3 pods"))
    agent = create_sre_agent(fake, toolkit=sim)
    out = asyncio.run(agent.ainvoke({"messages": [{"role": "user", "content": "list pods"}]}))
    assert out["messages"][-1].content == "3 pods"
