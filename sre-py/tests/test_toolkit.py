"""SreToolkit: the Rust tools as LangChain tools, under LangChain's and LangGraph's own runners."""

import asyncio
import json

import pytest
from conftest import NAME, call, image, model
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent
from langgraph.types import Command

import sre_agent
from sre_agent import SreToolkit


def by_name(tk):
    return {t.name: t for t in tk.get_tools()}


def tool_call(name, args, id="c1"):
    return {"name": name, "args": args, "id": id, "type": "tool_call"}


def test_every_tool_is_a_valid_langchain_tool(sim):
    tools = sim.get_tools()
    names = {t.name for t in tools}
    assert {"k8s_list_pods", "trivy_scan_image", "k8s_patch_image", "k8s_find_unhealthy", "k8s_rollback"} <= names
    for t in tools:
        assert NAME.match(t.name)
        assert len(t.description) > 20
        spec = convert_to_openai_tool(t)
        assert spec["function"]["parameters"]["type"] == "object"
        assert t.metadata == {"sre_agent": {"mutating": t.name in {"k8s_patch_image", "k8s_rollback", "k8s_restart_deployment", "k8s_scale_deployment"}}}


def test_read_tools_sync_and_async(sim):
    t = by_name(sim)
    out = t["k8s_find_unhealthy"].invoke({})
    assert "CrashLoopBackOff container web (ghcr.io/acme/shop-web:1.5.0)" in out
    pods = asyncio.run(t["k8s_list_pods"].ainvoke({"namespace": "shop"}))
    assert pods.startswith("3 pods in shop:")


@pytest.mark.parametrize(
    "name,args,expected",
    [
        ("k8s_scale_deployment", {"namespace": "shop", "deployment": "web", "replicas": "three"}, "invalid arguments for tool k8s_scale_deployment"),
        ("k8s_list_pods", {"namespace": "kube-system"}, "outside this agent's scope"),
        ("k8s_describe_pod", {"namespace": "shop", "pod": "nope"}, 'pods \\"nope\\" not found'.replace("\\", "")),
        ("k8s_list_pods", {"namespace": "shop", "extra": 1}, "Additional properties"),
        ("trivy_scan_image", {"image": "nginx:0.0.1"}, "not in the simulator's image catalogue"),
    ],
)
def test_every_error_kind_becomes_an_error_tool_message(sim, name, args, expected):
    msg = by_name(sim)[name].invoke(tool_call(name, args))
    assert isinstance(msg, ToolMessage)
    assert msg.status == "error"
    assert expected in msg.content, msg.content


def test_native_errors_are_a_python_hierarchy(sim):
    with pytest.raises(sre_agent.NotFound):
        sim.native.call("k8s_describe_pod", json.dumps({"namespace": "shop", "pod": "nope"}))
    with pytest.raises(sre_agent.InvalidArguments):
        sim.native.call("k8s_list_pods", "{not json")
    assert issubclass(sre_agent.NotFound, sre_agent.ToolError) and issubclass(sre_agent.ToolError, sre_agent.SreError)


def test_fail_closed_without_an_approver(sim):
    msg = by_name(sim)["k8s_rollback"].invoke(tool_call("k8s_rollback", {"namespace": "shop", "deployment": "web"}))
    assert msg.status == "error"
    assert "fail closed" in msg.content
    assert image(sim, "shop", "web") == "ghcr.io/acme/shop-web:1.5.0"


def test_the_approver_callback_sees_the_request_and_decides():
    seen = []

    def approver(request):
        seen.append(request)
        return {"decisions": [{"type": "approve"}]}

    tk = SreToolkit(simulator="bad-release", approver=approver)
    out = by_name(tk)["k8s_rollback"].invoke({"namespace": "shop", "deployment": "web"})
    result = json.loads(out)
    assert result["verification"]["passed"] is True
    assert image(tk, "shop", "web") == "ghcr.io/acme/shop-web:1.4.2"
    req = seen[0]
    assert req["action_requests"][0]["name"] == "k8s_rollback"
    assert req["action_requests"][0]["args"] == {"namespace": "shop", "deployment": "web"}
    assert "+ spec.template.spec.containers[web].image: ghcr.io/acme/shop-web:1.4.2" in req["action_requests"][0]["description"]
    assert req["review_configs"] == [{"action_name": "k8s_rollback", "allowed_decisions": ["approve", "reject"]}]
    tk.native.close()

    tk = SreToolkit(simulator="bad-release", approver=lambda r: {"decisions": [{"type": "reject", "message": "change freeze"}]})
    msg = by_name(tk)["k8s_rollback"].invoke(tool_call("k8s_rollback", {"namespace": "shop", "deployment": "web"}))
    assert msg.status == "error" and "change freeze" in msg.content
    assert image(tk, "shop", "web") == "ghcr.io/acme/shop-web:1.5.0"
    tk.native.close()


def graph_with(tk):
    tools = tk.get_tools()

    def agent(state):
        return {"messages": [call("k8s_patch_image", {"namespace": "shop", "deployment": "frontend", "container": "nginx", "image": "nginx:1.25.5-alpine"})]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode(tools))
    g.add_edge(START, "agent")
    g.add_edge("agent", "tools")
    g.add_edge("tools", END)
    return g.compile(checkpointer=InMemorySaver())


def test_interrupt_then_approve_resumes_and_applies_exactly_the_change(cve):
    graph = graph_with(cve)
    config = {"configurable": {"thread_id": "t1"}}
    state = graph.invoke({"messages": [HumanMessage("fix CVEs")]}, config)
    interrupts = state["__interrupt__"]
    request = interrupts[0].value
    assert request["action_requests"][0]["name"] == "k8s_patch_image"
    assert image(cve, "shop", "frontend") == "nginx:1.25.3-alpine", "nothing mutated before approval"
    state = graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
    last = state["messages"][-1]
    assert isinstance(last, ToolMessage) and last.status != "error", last.content
    # The approved tag, pinned to the digest that was scanned when the registry gives one.
    assert image(cve, "shop", "frontend").split("@")[0] == "nginx:1.25.5-alpine"


CRITICAL_IDS = {"CVE-2024-45491", "CVE-2023-38545"}  # nginx:1.25.3-alpine in the critical-cve scenario
PATCH = {"namespace": "shop", "deployment": "frontend", "container": "nginx", "image": "nginx:1.25.5-alpine"}


def critical_ids(evidence):
    return {f["id"] for f in evidence["vulnerabilities"]["current"]["findings"] if f["severity"] == "CRITICAL"}


def test_a_preview_carries_the_evidence_as_a_dict_and_as_text(cve):
    # Needs the image-patch tool to fill the plan's evidence (issue 19).
    plan = cve.native.preview("k8s_patch_image", json.dumps(PATCH))
    evidence = plan["evidence"]
    assert isinstance(evidence, dict), plan
    assert critical_ids(evidence) == CRITICAL_IDS
    assert evidence["vulnerabilities"]["current"]["counts"]["critical"] == 2
    assert evidence["vulnerabilities"]["candidate"]["counts"]["critical"] == 0
    assert CRITICAL_IDS <= set(evidence["vulnerabilities"]["clears"])
    for cve_id in CRITICAL_IDS:
        assert cve_id in plan["evidence_text"], plan["evidence_text"]
    assert image(cve, "shop", "frontend") == "nginx:1.25.3-alpine", "a preview changes nothing"


def test_the_interrupt_request_carries_the_evidence(cve):
    # Needs the image-patch tool to fill the plan's evidence and sre_agent.langchain to put it in
    # the request (issue 19).
    graph = graph_with(cve)
    config = {"configurable": {"thread_id": "t-evidence"}}
    state = graph.invoke({"messages": [HumanMessage("fix CVEs")]}, config)
    action = state["__interrupt__"][0].value["action_requests"][0]
    assert critical_ids(action["evidence"]) == CRITICAL_IDS
    assert "2 CRITICAL" in action["description"], action["description"]
    for cve_id in CRITICAL_IDS:
        assert cve_id in action["description"], action["description"]


def test_interrupt_then_reject_changes_nothing(cve):
    graph = graph_with(cve)
    config = {"configurable": {"thread_id": "t2"}}
    graph.invoke({"messages": [HumanMessage("fix CVEs")]}, config)
    state = graph.invoke(Command(resume={"decisions": [{"type": "reject", "message": "not today"}]}), config)
    last = state["messages"][-1]
    assert last.status == "error" and "not today" in last.content
    assert image(cve, "shop", "frontend") == "nginx:1.25.3-alpine"


def test_parallel_tool_calls_through_a_tool_node(sim):
    msg = AIMessage(
        "",
        tool_calls=[
            {"id": "a", "name": "k8s_list_pods", "args": {"namespace": "shop"}, "type": "tool_call"},
            {"id": "b", "name": "k8s_get_deployment", "args": {"namespace": "shop", "deployment": "web"}, "type": "tool_call"},
            {"id": "c", "name": "k8s_events", "args": {"namespace": "shop"}, "type": "tool_call"},
        ],
    )
    g = StateGraph(MessagesState)
    g.add_node("agent", lambda state: {"messages": [msg]})
    g.add_node("tools", ToolNode(sim.get_tools()))
    g.add_edge(START, "agent")
    g.add_edge("agent", "tools")
    g.add_edge("tools", END)
    graph = g.compile()
    out = [m for m in graph.invoke({"messages": [HumanMessage("go")]})["messages"] if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in out] == ["a", "b", "c"]
    assert all(m.status != "error" for m in out)
    out = [m for m in asyncio.run(graph.ainvoke({"messages": [HumanMessage("go")]}))["messages"] if isinstance(m, ToolMessage)]
    assert len(out) == 3 and all(m.status != "error" for m in out)


def test_under_langgraph_prebuilt_create_react_agent(sim):
    fake = model(call("k8s_find_unhealthy", {}), AIMessage("shop/web is crash-looping"))
    agent = create_react_agent(fake, sim.get_tools())
    state = agent.invoke({"messages": [HumanMessage("triage")]})
    tool_msgs = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert "CrashLoopBackOff" in tool_msgs[0].content
    assert state["messages"][-1].content == "shop/web is crash-looping"


def test_under_langchain_create_agent(sim):
    from langchain.agents import create_agent

    fake = model(call("k8s_list_pods", {"namespace": "shop"}), AIMessage("3 pods"))
    agent = create_agent(fake, sim.get_tools())
    state = agent.invoke({"messages": [HumanMessage("list")]})
    assert any(isinstance(m, ToolMessage) and m.content.startswith("3 pods in shop") for m in state["messages"])


def test_typed_data_reaches_python_as_dicts(sim):
    # The model gets the compact text; code gets the typed data as a dict (the ToolMessage's
    # artifact), never JSON text to re-parse.
    msg = by_name(sim)["k8s_find_unhealthy"].invoke(tool_call("k8s_find_unhealthy", {}))
    assert isinstance(msg.content, str) and "CrashLoopBackOff" in msg.content
    assert isinstance(msg.artifact, dict), msg.artifact
    web = msg.artifact["workloads"][0]
    assert (web["namespace"], web["kind"], web["name"]) == ("shop", "Deployment", "web")
    assert web["findings"][0]["kind"] == "crash_loop_back_off"
    msg = by_name(sim)["k8s_get_deployment"].invoke(tool_call("k8s_get_deployment", {"namespace": "shop", "deployment": "web"}))
    assert [r["current"] for r in msg.artifact["revisions"]] == [True, False]
    plan = sim.native.preview("k8s_rollback", json.dumps({"namespace": "shop", "deployment": "web"}))
    assert isinstance(plan, dict) and plan["target"]["name"] == "web"


def test_async_tools_await_rust_without_a_thread_per_call(sim):
    # Regression: arun was asyncio.to_thread(run): a Python thread per concurrent call.
    import threading

    tool = by_name(sim)["k8s_list_pods"]

    async def many():
        before = threading.active_count()
        outs = await asyncio.gather(*[tool.ainvoke({"namespace": "shop"}) for _ in range(16)])
        return before, threading.active_count(), outs

    before, after, outs = asyncio.run(many())
    assert all(o.startswith("3 pods in shop") for o in outs), outs[0]
    assert after == before, f"{after - before} Python threads were started"
    msg = asyncio.run(by_name(sim)["k8s_find_unhealthy"].ainvoke(tool_call("k8s_find_unhealthy", {})))
    assert msg.artifact["workloads"][0]["name"] == "web"
