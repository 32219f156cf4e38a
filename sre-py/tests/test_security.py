"""Regression tests of the adversarial review (issue 11) on the Python paths: hostile names, a
LangGraph interrupt that must bind to the plan the human saw, its expiry, grants that cover one
action only, and parallel writes that each keep their own undo."""

import json
import textwrap
import time
import urllib.request

import pytest
from conftest import image
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

import sre_agent
from sre_agent import SreToolkit

PATCH = {"namespace": "shop", "deployment": "frontend", "container": "nginx", "image": "nginx:1.25.5-alpine"}


def by_name(tk):
    return {t.name: t for t in tk.get_tools()}


def graph_calling(tk, *calls):
    msg = AIMessage("", tool_calls=[{"id": f"c{i}", "name": n, "args": a, "type": "tool_call"} for i, (n, a) in enumerate(calls)])
    g = StateGraph(MessagesState)
    g.add_node("agent", lambda state: {"messages": [msg]})
    g.add_node("tools", ToolNode(tk.get_tools()))
    g.add_edge(START, "agent")
    g.add_edge("agent", "tools")
    g.add_edge("tools", END)
    return g.compile(checkpointer=InMemorySaver())


def another_actor_patches(tk, ns, name, container, new_image):
    """Changes a deployment behind the agent's back, through the simulator's own API."""
    body = json.dumps({"spec": {"template": {"spec": {"containers": [{"name": container, "image": new_image}]}}}}).encode()
    req = urllib.request.Request(
        f"{tk.native.url}/apis/apps/v1/namespaces/{ns}/deployments/{name}",
        data=body,
        method="PATCH",
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


@pytest.mark.parametrize("name", ["frontend#", "frontend#x", "frontend?dryRun=None", "../frontend", "Frontend", "front\x1b[2Kend"])
def test_hostile_names_never_reach_the_api_server(cve, name):
    args = dict(PATCH, deployment=name)
    with pytest.raises(sre_agent.InvalidArguments):
        cve.native.preview("k8s_patch_image", json.dumps(args))
    msg = by_name(cve)["k8s_patch_image"].invoke({"name": "k8s_patch_image", "args": args, "id": "c1", "type": "tool_call"})
    assert msg.status == "error"
    assert "\x1b" not in msg.content
    assert image(cve, "shop", "frontend") == "nginx:1.25.3-alpine", "nothing was written"


def test_a_plan_applies_only_as_previewed(cve):
    plan = cve.native.preview("k8s_patch_image", json.dumps(PATCH))
    assert plan["fingerprint"].startswith("sha256:")
    # Pinned to the digest the (simulated) registry serves: what was scanned is what runs.
    [change] = plan["images"]
    assert (change["container"], change["before"]) == ("nginx", "nginx:1.25.3-alpine")
    assert change["after"].startswith("nginx:1.25.5-alpine@sha256:"), change
    other = dict(PATCH, image="nginx:1.26.2-alpine")
    with pytest.raises(sre_agent.ApprovalDenied):
        cve.native.apply("k8s_patch_image", json.dumps(other), plan["fingerprint"], "mallory")
    with pytest.raises(sre_agent.Conflict):
        cve.native.apply("k8s_patch_image", json.dumps(PATCH), "sha256:" + "0" * 64, "mallory")
    assert image(cve, "shop", "frontend") == "nginx:1.25.3-alpine"
    # A denied attempt used the plan up: it must be previewed again.
    plan = cve.native.preview("k8s_patch_image", json.dumps(PATCH))
    out = cve.native.apply("k8s_patch_image", json.dumps(PATCH), plan["fingerprint"], "alice")
    assert out["verification"]["passed"] is True
    with pytest.raises(sre_agent.Conflict):
        cve.native.apply("k8s_patch_image", json.dumps(PATCH), plan["fingerprint"], "alice")


def test_interrupt_then_target_changes_then_approve_applies_nothing_and_asks_again(cve):
    graph = graph_calling(cve, ("k8s_patch_image", PATCH))
    config = {"configurable": {"thread_id": "changed"}}
    state = graph.invoke({"messages": [HumanMessage("fix CVEs")]}, config)
    first = state["__interrupt__"][0].value["action_requests"][0]
    assert first["fingerprint"].startswith("sha256:") and first["expires_at"]
    assert "nginx:1.25.3-alpine -> nginx:1.25.5-alpine" in first["description"]

    # While the human reads diff A, someone else moves the deployment to 1.25.4.
    another_actor_patches(cve, "shop", "frontend", "nginx", "nginx:1.25.4-alpine")
    state = graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
    assert image(cve, "shop", "frontend") == "nginx:1.25.4-alpine", "the approval of diff A applied nothing"
    again = state["__interrupt__"][0].value["action_requests"][0]
    assert again["fingerprint"] != first["fingerprint"]
    assert "nginx:1.25.4-alpine -> nginx:1.25.5-alpine" in again["description"], again["description"]

    # Approving the new diff applies it.
    state = graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
    last = state["messages"][-1]
    assert isinstance(last, ToolMessage) and last.status != "error", last.content
    assert image(cve, "shop", "frontend").split("@")[0] == "nginx:1.25.5-alpine"


def test_an_interrupt_answered_after_it_expired_denies():
    tk = SreToolkit(simulator="critical-cve", approval_ttl=0.3)
    try:
        graph = graph_calling(tk, ("k8s_patch_image", PATCH))
        config = {"configurable": {"thread_id": "late"}}
        graph.invoke({"messages": [HumanMessage("fix CVEs")]}, config)
        time.sleep(0.6)
        state = graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
        last = state["messages"][-1]
        assert isinstance(last, ToolMessage) and last.status == "error"
        assert "expired" in last.content, last.content
        assert image(tk, "shop", "frontend") == "nginx:1.25.3-alpine"
    finally:
        tk.native.close()


TWO_DEPLOYMENTS = textwrap.dedent(
    """
    name: two-deployments
    description: Two deployments on nginx; one gets a good tag, the other a tag that cannot be pulled.
    task: Patch both.
    images:
      nginx:1.25.3-alpine: {health: healthy}
      nginx:1.25.5-alpine: {health: healthy}
    deployments:
      - {namespace: shop, name: a, replicas: 2, containers: [{name: nginx, image: "nginx:1.25.3-alpine"}]}
      - {namespace: shop, name: b, replicas: 2, containers: [{name: nginx, image: "nginx:1.25.3-alpine"}]}
    """
)


def test_parallel_writes_roll_back_only_the_one_that_failed(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(TWO_DEPLOYMENTS)
    tk = SreToolkit(simulator=str(path), approver=lambda r: {"decisions": [{"type": "approve"}]})
    try:
        good = {"namespace": "shop", "deployment": "a", "container": "nginx", "image": "nginx:1.25.5-alpine"}
        bad = {"namespace": "shop", "deployment": "b", "container": "nginx", "image": "nginx:9.9.9-missing"}
        graph = graph_calling(tk, ("k8s_patch_image", good), ("k8s_patch_image", bad))
        state = graph.invoke({"messages": [HumanMessage("patch both")]}, {"configurable": {"thread_id": "p"}})
        results = {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}
        assert json.loads(results["c0"].content)["verification"]["passed"] is True
        failed = json.loads(results["c1"].content)
        assert failed["verification"]["passed"] is False
        assert failed["rolled_back"]["ok"] is True, failed
        assert image(tk, "shop", "a").split("@")[0] == "nginx:1.25.5-alpine", "the good write kept"
        assert image(tk, "shop", "b") == "nginx:1.25.3-alpine", "the failed write undone"
    finally:
        tk.native.close()


def test_an_image_with_terminal_sequences_is_refused_before_anyone_is_asked():
    seen = []
    tk = SreToolkit(simulator="critical-cve", approver=lambda r: seen.append(r) or {"decisions": [{"type": "reject", "message": "no"}]})
    try:
        args = dict(PATCH, image="nginx:1.25.5-alpine\x1b[2K")
        msg = by_name(tk)["k8s_patch_image"].invoke({"name": "k8s_patch_image", "args": args, "id": "c1", "type": "tool_call"})
        assert msg.status == "error" and "\x1b" not in msg.content, msg.content
        assert seen == [], "nobody is asked about an invalid image"
        assert image(tk, "shop", "frontend") == "nginx:1.25.3-alpine"
    finally:
        tk.native.close()


def _settle(tk, namespace, name):
    """Waits until the simulator's controllers are done with a deployment (resourceVersion the same
    over five reads): a plan made while they still write its status is rightly refused as stale."""
    url = f"{tk.native.url}/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    last, same = None, 0
    for _ in range(400):
        version = json.loads(urllib.request.urlopen(url).read())["metadata"].get("resourceVersion")
        same = same + 1 if version == last else 0
        if same >= 5:
            return
        last = version
        time.sleep(0.05)
    raise AssertionError(f"{namespace}/{name} did not settle")


def test_two_writes_in_one_step_never_share_a_human_answer():
    # Regression: LangGraph hands a resume value to whichever call asks first, so approving the
    # restart a human saw could apply a scale to zero nobody saw.
    restart = ("k8s_restart_deployment", {"namespace": "shop", "deployment": "web"})
    zero = ("k8s_scale_deployment", {"namespace": "shop", "deployment": "web", "replicas": 0})
    for trial in range(6):
        tk = SreToolkit(simulator="healthy")
        try:
            _settle(tk, "shop", "web")
            calls = (restart, zero) if trial % 2 == 0 else (zero, restart)
            graph = graph_calling(tk, *calls)
            config = {"configurable": {"thread_id": f"two-{trial}"}}
            state = graph.invoke({"messages": [HumanMessage("go")]}, config)
            shown = [i.value["action_requests"][0] for i in state["__interrupt__"]]
            assert len(shown) == 1, shown
            state = graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
            replicas = json.loads(urllib.request.urlopen(f"{tk.native.url}/apis/apps/v1/namespaces/shop/deployments/web").read())["spec"]["replicas"]
            if shown[0]["name"] != "k8s_scale_deployment":
                assert replicas == 2, f"trial {trial}: a scale to zero nobody saw was applied"
            # The other write was refused: it never shares the step's one question. (When the
            # simulator's controllers write the deployment's status in between, the refusal can
            # come from the gate instead: the target changed since it was read, nothing applied.)
            refusals = ("another write in this step", "nothing was applied")
            denied = [
                m
                for m in state["messages"]
                if isinstance(m, ToolMessage) and any(r in m.content for r in refusals)
            ]
            assert len(denied) == 1, [m.content for m in state["messages"] if isinstance(m, ToolMessage)]
            assert "__interrupt__" not in state
        finally:
            tk.native.close()


def test_a_decision_naming_another_fingerprint_denies(cve):
    graph = graph_calling(cve, ("k8s_patch_image", PATCH))
    config = {"configurable": {"thread_id": "echo"}}
    graph.invoke({"messages": [HumanMessage("fix CVEs")]}, config)
    state = graph.invoke(Command(resume={"decisions": [{"type": "approve", "fingerprint": "sha256:" + "1" * 64}]}), config)
    last = state["messages"][-1]
    assert last.status == "error" and "another action" in last.content, last.content
    assert image(cve, "shop", "frontend") == "nginx:1.25.3-alpine"


class _Model:
    """A loopback OpenAI-compatible server replaying scripted tool calls (a hostile model)."""

    def __init__(self, calls):
        import http.server
        import threading

        replies = [self._reply(calls), self._reply([])]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps(replies.pop(0) if replies else _Model._reply([])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @staticmethod
    def _reply(calls):
        message = {"role": "assistant", "content": None if calls else "done"}
        if calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, (n, a) in enumerate(calls)
            ]
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


@pytest.mark.parametrize(
    "call",
    [
        ("k8s_scale_deployment", {"namespace": "shop", "deployment": "web", "replicas": 0}),
        ("k8s_patch_image", {"namespace": "shop", "deployment": "frontend", "container": "nginx", "image": "evil.example/miner:1"}),
        # What text injected into a log asks for: a change of a healthy workload, within every
        # other rule; it shows no problem it fixes.
        ("k8s_restart_deployment", {"namespace": "shop", "deployment": "frontend"}),
        ("k8s_scale_deployment", {"namespace": "shop", "deployment": "frontend", "replicas": 1}),
    ],
)
def test_auto_approve_has_safe_defaults(monkeypatch, call):
    # Regression: sre_agent.run(auto_approve=True) approved a scale to zero and a foreign image,
    # and (issue 17's scorecard) a restart or a scale of a healthy workload.
    model = _Model([call])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", model.url)
    tools = sre_agent.Tools.simulator("healthy")
    try:
        report = sre_agent.run("go", tools=tools, provider="openai", auto_approve=True)
        action = report["actions"][0]
        assert action["status"] == "denied", action
        assert tools.deployment_images("shop", "frontend")[0][1] == "nginx:1.26.2-alpine"
    finally:
        tools.close()
        model.server.shutdown()


def test_the_async_path_binds_interrupts_the_same_way(cve):
    graph = graph_calling(cve, ("k8s_patch_image", PATCH))
    config = {"configurable": {"thread_id": "async"}}

    async def go():
        state = await graph.ainvoke({"messages": [HumanMessage("fix CVEs")]}, config)
        first = state["__interrupt__"][0].value["action_requests"][0]
        another_actor_patches(cve, "shop", "frontend", "nginx", "nginx:1.25.4-alpine")
        state = await graph.ainvoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
        again = state["__interrupt__"][0].value["action_requests"][0]
        assert again["fingerprint"] != first["fingerprint"]
        assert image(cve, "shop", "frontend") == "nginx:1.25.4-alpine"
        return await graph.ainvoke(Command(resume={"decisions": [{"type": "approve"}]}), config)

    import asyncio

    state = asyncio.run(go())
    last = state["messages"][-1]
    assert isinstance(last, ToolMessage) and last.status != "error", last.content
    assert last.artifact["verification"]["passed"] is True
    assert image(cve, "shop", "frontend").split("@")[0] == "nginx:1.25.5-alpine"
