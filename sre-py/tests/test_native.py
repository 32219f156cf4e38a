"""The native layer without LangChain: the simulator, the agent with a provider by name, the report."""

import pytest

import sre_agent


def test_the_offline_agent_with_an_approver_returns_the_report_as_a_dict():
    tools = sre_agent.Tools.simulator("bad-release")
    seen = []

    def approver(request):
        seen.append(request)
        return {"type": "approve"}

    report = sre_agent.run("The shop/web rollout is failing. Fix it.", tools=tools, approver=approver)
    assert report["outcome"] == {"status": "completed"}
    assert report["provider"] == "offline/playbook"
    assert report["actions"][0]["tool"] == "k8s_rollback"
    assert report["actions"][0]["verification"]["passed"] is True
    assert seen[0]["preview"]["fingerprint"].startswith("deployments.apps/shop/web@resourceVersion=")
    tools.close()


def test_without_an_approver_writes_are_denied():
    tools = sre_agent.Tools.simulator("bad-release")
    report = sre_agent.run("fix shop/web", tools=tools)
    assert report["actions"][0]["status"] == "denied"
    tools.close()


def test_providers_by_name_report_missing_keys(monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    tools = sre_agent.Tools.simulator("healthy")
    with pytest.raises(sre_agent.ProviderError, match="GROQ_API_KEY is not set"):
        sre_agent.run("check", tools=tools, provider="groq")
    with pytest.raises(sre_agent.SreError, match="unknown provider"):
        sre_agent.run("check", tools=tools, provider="gemini")
    tools.close()
