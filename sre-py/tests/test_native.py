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
    assert seen[0]["preview"]["target_fingerprint"].startswith("deployments.apps/shop/web@resourceVersion=")
    assert seen[0]["preview"]["fingerprint"].startswith("sha256:"), "the action fingerprint"
    tools.close()


CRITICAL_IDS = {"CVE-2024-45491", "CVE-2023-38545"}  # nginx:1.25.3-alpine in the critical-cve scenario


def test_the_approver_sees_the_evidence_of_a_cve_patch():
    # Needs the image-patch tool to fill the plan's evidence (issue 19).
    tools = sre_agent.Tools.simulator("critical-cve")
    seen = []

    def approver(request):
        seen.append(request)
        return {"type": "approve"}

    report = sre_agent.run(
        "Check the shop namespace for security risks in running images and remediate critical ones.",
        tools=tools,
        approver=approver,
    )
    assert report["outcome"] == {"status": "completed"}
    request = next(r for r in seen if r["tool"] == "k8s_patch_image")
    evidence = request["preview"]["evidence"]
    assert evidence is not None, "the patch came with no evidence"
    vulns = evidence["vulnerabilities"]
    assert vulns["container"] == "nginx"
    current = vulns["current"]
    assert current["counts"]["critical"] == 2, current["counts"]
    assert {f["id"] for f in current["findings"] if f["severity"] == "CRITICAL"} == CRITICAL_IDS
    assert vulns["candidate"]["counts"]["critical"] == 0, vulns["candidate"]
    assert CRITICAL_IDS <= set(vulns["clears"]) and vulns["introduces"] == []
    # What a human reads: the same facts, in the prompt's words.
    for text in (request["description"], request["preview"]["evidence_text"]):
        assert "2 CRITICAL" in text, text
        for cve in CRITICAL_IDS:
            assert cve in text, text
    tools.close()


def test_without_an_approver_writes_are_denied():
    tools = sre_agent.Tools.simulator("bad-release")
    report = sre_agent.run("fix shop/web", tools=tools)
    assert report["actions"][0]["status"] == "denied"
    tools.close()


def test_policies_from_python():
    tools = sre_agent.Tools.simulator("bad-release")
    # Rules first: a namespace outside the allow-list is denied without asking anyone.
    report = sre_agent.run("fix shop/web", tools=tools, auto_approve=True, namespaces=["jobs"])
    action = report["actions"][0]
    assert action["status"] == "denied"
    assert action["decision"] == {"decision": "denied", "by": "policy:rules", "reason": 'namespace "shop" is not in the allow-list (jobs)'}
    report = sre_agent.run("fix shop/web", tools=tools, auto_approve=True, namespaces=["shop"])
    assert report["actions"][0]["status"] == "applied"
    assert report["actions"][0]["decision"]["by"] == "policy:auto"
    tools.close()


def test_providers_by_name_report_missing_keys(monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    tools = sre_agent.Tools.simulator("healthy")
    with pytest.raises(sre_agent.ProviderError, match="GROQ_API_KEY is not set"):
        sre_agent.run("check", tools=tools, provider="groq")
    with pytest.raises(sre_agent.SreError, match="unknown provider"):
        sre_agent.run("check", tools=tools, provider="gemini")
    tools.close()


def test_kubeconfig_discovery_with_the_real_api_server(monkeypatch):
    """SreToolkit() finds the cluster through KUBECONFIG (the real API server tier of .ci/run)."""
    import os

    kubeconfig = os.environ.get("SRE_K8S_AGENT_KUBECONFIG")
    if not kubeconfig:
        if os.environ.get("SRE_K8S_REQUIRED") == "1":
            pytest.fail("SRE_K8S_REQUIRED=1 but SRE_K8S_AGENT_KUBECONFIG is not set")
        pytest.skip("the real API server harness is not up")
    from langchain_core.messages import ToolMessage

    from sre_agent import SreToolkit

    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    tk = SreToolkit()  # no arguments: standard discovery, every namespace RBAC allows
    tools = {t.name: t for t in tk.get_tools()}
    for ns in ["default", "kube-system", "prod"]:
        msg = tools["k8s_list_pods"].invoke({"name": "k8s_list_pods", "args": {"namespace": ns}, "id": "1", "type": "tool_call"})
        assert isinstance(msg, ToolMessage)
        # Not refused by a scope the user never set: the real API server's own 403 comes back.
        assert "outside this agent's scope" not in msg.content, msg.content
        assert msg.status == "error" and "forbidden" in msg.content and "cannot list resource" in msg.content, msg.content
    # namespaces=[…] narrows the scope for those who want it.
    narrow = {t.name: t for t in SreToolkit(namespaces=["shop"]).get_tools()}
    msg = narrow["k8s_list_pods"].invoke({"name": "k8s_list_pods", "args": {"namespace": "prod"}, "id": "1", "type": "tool_call"})
    assert msg.status == "error" and "outside this agent's scope (shop)" in msg.content, msg.content
