"""The secret corpus of ``secrets-everywhere.yaml`` (logs and an event full of made-up API keys,
bearer tokens, AWS keys, a private key, a JWT, URL passwords and ``KEY=value`` secrets) never reaches
a model, an approver or a report through any Python path: ``SreToolkit`` tools, ``create_sre_agent``
and ``sre_agent.run``."""

import json
import pathlib

from conftest import call, model
from langchain_core.messages import AIMessage, HumanMessage

import sre_agent
from sre_agent import SreToolkit, create_sre_agent

FIXTURE = str(pathlib.Path(__file__).resolve().parents[2] / "sre-tools/tests/fixtures/scenarios/secrets-everywhere.yaml")

SECRETS = pathlib.Path(FIXTURE.replace(".yaml", ".secrets")).read_text().split()


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} leaks {secret}"


def crashing_pod(tk: SreToolkit) -> str:
    pods = {t.name: t for t in tk.get_tools()}["k8s_list_pods"].invoke({"namespace": "shop"})
    return next(line.split()[0] for line in pods.splitlines() if "CrashLoopBackOff" in line)


def test_read_tools_redact_logs_and_events():
    # Regression: SreToolkit's read tools handed logs and events to the model unredacted.
    tk = SreToolkit(simulator=FIXTURE)
    try:
        tools = {t.name: t for t in tk.get_tools()}
        pod = crashing_pod(tk)
        logs = tools["k8s_pod_logs"].invoke({"namespace": "shop", "pod": pod, "previous": True})
        events = tools["k8s_events"].invoke({"namespace": "shop"})
        assert "[REDACTED]" in logs and "[REDACTED]" in events, (logs, events)
        assert "WebhookFailed" in events, events
        assert_clean(logs, "k8s_pod_logs")
        assert_clean(events, "k8s_events")
    finally:
        tk.native.close()


def test_create_sre_agent_never_shows_the_model_a_secret():
    tk = SreToolkit(simulator=FIXTURE)
    try:
        pod = crashing_pod(tk)
        fake = model(
            call("k8s_pod_logs", {"namespace": "shop", "pod": pod, "previous": True}),
            call("k8s_events", {"namespace": "shop"}, id="c2"),
            AIMessage("the release needs DATABASE_URL"),
        )
        agent = create_sre_agent(fake, toolkit=tk)
        state = agent.invoke({"messages": [HumanMessage("why does shop/web crash?")]})
        text = json.dumps([m.content for m in state["messages"]]) + json.dumps(agent.last_report)
        assert "[REDACTED]" in text
        assert_clean(text, "create_sre_agent")
    finally:
        tk.native.close()


def test_sre_agent_run_report_has_no_secret():
    tools = sre_agent.Tools.simulator(FIXTURE)
    try:
        report = sre_agent.run("The shop/web rollout is failing. Find out why and fix it.", tools=tools, auto_approve=True)
        text = json.dumps(report)
        assert "[REDACTED]" in text
        assert_clean(text, "sre_agent.run")
        assert report["actions"][0]["tool"] == "k8s_rollback" and report["actions"][0]["status"] == "applied", report["actions"]
    finally:
        tools.close()
