"""LangChain / LangGraph adapters: :class:`SreToolkit` and :func:`create_sre_agent`.

Write tools ask for approval with a request shaped like LangChain's human-in-the-loop middleware
(``{"action_requests": [...], "review_configs": [...]}``) and read its answer
(``{"decisions": [{"type": "approve"}]}`` or ``{"type": "reject", "message": ...}``). The source of
approval, in order: the ``approver`` callback; else ``langgraph.types.interrupt(request)`` when running
inside a LangGraph graph (so ``Command(resume=...)`` answers it); else deny — fail closed, nothing is
sent to the API server. Before asking, a write tool only validates its arguments and runs the
server-side dry run, so LangGraph can re-run it from the top when it resumes.

An interrupt request carries the plan's action ``fingerprint`` and ``expires_at``. On resume the
decision applies only to a fresh plan with that same fingerprint, before it expires: if the target
changed while the human decided, nothing is applied and the human is asked again with the new diff;
an expired decision denies. Every write applies its own plan and undoes itself from it, so parallel
writes in one ``ToolNode`` never touch each other's rollback.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Optional, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, BaseToolkit, StructuredTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from . import _native

Approver = Callable[[dict], dict]


def _approval_request(name: str, args: dict, preview: dict) -> dict:
    warning = f"WARNING: {preview['warning']}\n" if preview.get("warning") else ""
    target = preview.get("target_fingerprint") or preview.get("fingerprint")
    # The evidence (the scans a CVE patch is based on, the crash behind a rollback) comes from the
    # tool's structured data, never from the model's text.
    evidence = f"\n{preview['evidence_text']}" if preview.get("evidence_text") else ""
    description = (
        f"{warning}{preview['summary']} (risk {preview['risk']}){evidence}\n{preview['diff']}\ntarget: {target}"
    )
    action = {"name": name, "args": args, "description": description, "evidence": preview.get("evidence")}
    if "fingerprint" in preview:
        action["fingerprint"] = preview["fingerprint"]
    if "expires_at" in preview:
        action["expires_at"] = preview["expires_at"]
    return {
        "action_requests": [action],
        "review_configs": [{"action_name": name, "allowed_decisions": ["approve", "reject"]}],
    }


def _first_decision(answer: Any) -> dict:
    if isinstance(answer, dict):
        decisions = answer.get("decisions")
        if isinstance(decisions, list) and decisions and isinstance(decisions[0], dict):
            return decisions[0]
    return {"type": "reject", "message": "no usable decision"}


def _graph_key(name: str, args: str) -> Optional[tuple[str, str]]:
    """(graph task, this call's key) in a running LangGraph graph, or None outside one."""
    try:
        from langgraph.config import get_config
    except ImportError:
        return None
    try:
        configurable = get_config().get("configurable", {})
    except RuntimeError:
        return None
    # Only a running graph can be interrupted (a plain tool.invoke also has a runnable config).
    if "__pregel_scratchpad" not in configurable:
        return None
    thread = str(configurable.get("thread_id", ""))
    ns = str(configurable.get("checkpoint_ns", ""))
    return json.dumps([thread, ns]), json.dumps([thread, ns, name, json.loads(args)], sort_keys=True)


def _apply_after_interrupts(native: Any, name: str, kwargs: dict, args: str, plan: dict, where: tuple[str, str]) -> tuple[str, dict]:
    """Asks through ``langgraph.types.interrupt`` and applies only the plan the human approved.

    Each question is recorded natively with the plan's action fingerprint and an expiry. When the
    graph resumes, the tool runs again from the top with a fresh plan: the answer applies only if
    that plan has the fingerprint the human saw, in time (and, when the decision names a
    ``fingerprint``, only if it is that one); if the target changed meanwhile, nothing is applied and
    the human is asked again with the new diff. One write per graph thread may wait for a human at a
    time: LangGraph gives a resume value to whichever call asks first, so a second write asking in
    the same step could receive the answer meant for the first — it is denied instead.
    """
    decided = _decide_by_interrupts(native, name, kwargs, plan, where)
    if decided is not None:
        return decided
    slot, key = where
    try:
        result = native.apply(name, args, plan["fingerprint"], "langgraph:interrupt")
    except _native.SreError as e:
        native.hitl_finish(slot, key, False, str(e))
        raise
    return _finished(native, where, result)


async def _aapply_after_interrupts(native: Any, name: str, kwargs: dict, args: str, plan: dict, where: tuple[str, str]) -> tuple[str, dict]:
    """:func:`_apply_after_interrupts`, awaiting the apply on the Rust runtime."""
    decided = _decide_by_interrupts(native, name, kwargs, plan, where)
    if decided is not None:
        return decided
    slot, key = where
    try:
        result = await native.apply_async(name, args, plan["fingerprint"], "langgraph:interrupt")
    except _native.SreError as e:
        native.hitl_finish(slot, key, False, str(e))
        raise
    return _finished(native, where, result)


def _finished(native: Any, where: tuple[str, str], result: dict) -> tuple[str, dict]:
    content = json.dumps(result)
    native.hitl_finish(where[0], where[1], True, content)
    return content, result


def _decide_by_interrupts(native: Any, name: str, kwargs: dict, plan: dict, where: tuple[str, str]) -> Optional[tuple[str, dict]]:
    """Asks until the human's answer applies to ``plan``: returns None when the plan is approved and
    must now be applied, the replayed outcome when LangGraph runs the task again after this write
    ended, and raises ``ToolException`` (or LangGraph's interrupt) otherwise."""
    from langgraph.errors import GraphInterrupt
    from langgraph.types import interrupt

    slot, key = where
    status = native.hitl_claim(slot, key)
    if status == "busy":
        raise ToolException(
            "denied by langgraph:interrupt: another write in this step is waiting for a human; "
            "propose one write at a time. Nothing was changed."
        )
    if status.startswith("done:"):
        # LangGraph runs the whole task again on resume: replay how this write ended.
        ok, _, text = status[len("done:") :].partition(":")
        if ok == "ok":
            return text, json.loads(text)
        raise ToolException(text)
    asks = json.loads(native.hitl_asks(key))
    index = 0
    while True:
        if index >= len(asks):
            request = _approval_request(name, kwargs, plan)
            asks.append(json.loads(native.hitl_ask(key, plan["fingerprint"], json.dumps(request))))
        try:
            answer = interrupt(asks[index])
        except GraphInterrupt:
            native.hitl_shown(key, index)
            raise
        verdict = native.hitl_resolve(key, index, json.dumps(answer), plan["fingerprint"])
        if verdict == "apply":
            return None
        if verdict.startswith("deny"):
            reason = verdict.partition(":")[2].strip()
            message = f"denied by langgraph:interrupt: {reason}. Nothing was changed."
            native.hitl_finish(slot, key, False, message)
            raise ToolException(message)
        index += 1


class SreToolkit(BaseToolkit):
    """The sre-agent tools as LangChain tools.

    ``SreToolkit()`` uses the current kube context (``KUBECONFIG``, ``~/.kube/config`` or in-cluster) and
    ``trivy`` on ``PATH``; ``SreToolkit(simulator="bad-release")`` uses the embedded API simulator.
    ``approver`` is a callable taking the approval request dict and returning the decision dict.
    ``approval_ttl`` (seconds, default 300) bounds how long a previewed plan waits for its decision.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _native: Any = PrivateAttr()
    _approver: Optional[Approver] = PrivateAttr(default=None)

    def __init__(
        self,
        *,
        approver: Optional[Approver] = None,
        simulator: Optional[str] = None,
        namespaces: Optional[Sequence[str]] = None,
        tools: Optional[_native.Tools] = None,
        approval_ttl: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._approver = approver
        if tools is not None:
            self._native = tools
        elif simulator is not None:
            self._native = _native.Tools.simulator(simulator)
        else:
            self._native = _native.Tools.kubeconfig(list(namespaces) if namespaces else None)
        if approval_ttl is not None:
            self._native.approval_ttl = approval_ttl

    @property
    def native(self) -> _native.Tools:
        """The native tool set (for the simulator's ``deployment_images`` and ``close``)."""
        return self._native

    def get_tools(self) -> list[BaseTool]:
        return [self._tool(spec) for spec in self._native.specs()]

    def _tool(self, spec: dict) -> BaseTool:
        native = self._native
        name = spec["name"]
        mutating = spec["mutating"]
        approver = self._approver

        def run(**kwargs: Any) -> tuple[str, Any]:
            # (content for the model, the typed data as a dict): a ToolMessage's `artifact`.
            args = json.dumps(kwargs)
            try:
                if not mutating:
                    return native.call(name, args)
                plan = native.preview(name, args)
                if approver is not None:
                    decision = _first_decision(approver(_approval_request(name, kwargs, plan)))
                    if decision.get("type") != "approve":
                        raise ToolException(f"denied by python:approver: {decision.get('message', 'rejected')}. Nothing was changed.")
                    result = native.apply(name, args, plan["fingerprint"], "python:approver")
                    return json.dumps(result), result
                where = _graph_key(name, args)
                if where is None:
                    raise ToolException("denied by policy:deny: no approver and not inside a LangGraph graph (fail closed). Nothing was changed.")
                return _apply_after_interrupts(native, name, kwargs, args, plan, where)
            except _native.SreError as e:
                raise ToolException(str(e)) from e

        async def arun(**kwargs: Any) -> tuple[str, Any]:
            # Awaits the Rust runtime directly: no thread per call.
            args = json.dumps(kwargs)
            try:
                if not mutating:
                    return await native.call_async(name, args)
                plan = await native.preview_async(name, args)
                if approver is not None:
                    decision = _first_decision(approver(_approval_request(name, kwargs, plan)))
                    if decision.get("type") != "approve":
                        raise ToolException(f"denied by python:approver: {decision.get('message', 'rejected')}. Nothing was changed.")
                    result = await native.apply_async(name, args, plan["fingerprint"], "python:approver")
                    return json.dumps(result), result
                where = _graph_key(name, args)
                if where is None:
                    raise ToolException("denied by policy:deny: no approver and not inside a LangGraph graph (fail closed). Nothing was changed.")
                return await _aapply_after_interrupts(native, name, kwargs, args, plan, where)
            except _native.SreError as e:
                raise ToolException(str(e)) from e

        return StructuredTool(
            name=name,
            description=spec["description"],
            args_schema=spec["parameters"],
            func=run,
            coroutine=arun,
            handle_tool_error=True,
            response_format="content_and_artifact",
            metadata={"sre_agent": {"mutating": mutating}},
        )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


def _to_core(m: Any) -> dict:
    if isinstance(m, dict):
        role = {"human": "user", "ai": "assistant"}.get(m.get("role", "user"), m.get("role", "user"))
        return {"role": role, "content": _text(m.get("content", ""))}
    if isinstance(m, SystemMessage):
        return {"role": "system", "content": _text(m.content)}
    if isinstance(m, HumanMessage):
        return {"role": "user", "content": _text(m.content)}
    if isinstance(m, AIMessage):
        calls = [{"id": c["id"], "name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
        return {"role": "assistant", "content": _text(m.content), "tool_calls": calls}
    if isinstance(m, ToolMessage):
        return {"role": "tool", "content": _text(m.content), "tool_call_id": m.tool_call_id, "is_error": m.status == "error"}
    raise TypeError(f"unsupported message {type(m).__name__}")


def _to_lc(m: dict) -> BaseMessage:
    role = m["role"]
    if role == "system":
        return SystemMessage(m["content"])
    if role == "user":
        return HumanMessage(m["content"])
    if role == "assistant":
        calls = [{"id": c["id"], "name": c["name"], "args": c["arguments"] if isinstance(c["arguments"], dict) else {}, "type": "tool_call"} for c in m.get("tool_calls", [])]
        return AIMessage(m.get("content", ""), tool_calls=calls)
    return ToolMessage(m["content"], tool_call_id=m.get("tool_call_id", ""), status="error" if m.get("is_error") else "success")


def _from_ai(ai: AIMessage) -> dict:
    calls = [{"id": c.get("id") or f"call_{i}", "name": c["name"], "arguments": c["args"]} for i, c in enumerate(ai.tool_calls)]
    usage = ai.usage_metadata or {}
    return {
        "message": {"role": "assistant", "content": _text(ai.content), "tool_calls": calls},
        "stop_reason": "tool_use" if calls else "end_turn",
        "usage": {"input_tokens": usage.get("input_tokens", 0), "output_tokens": usage.get("output_tokens", 0)},
    }


class SreAgent:
    """The Rust sre-core loop driven by a LangChain chat model (see :func:`create_sre_agent`)."""

    def __init__(self, model: Any, toolkit: SreToolkit, approver: Optional[Approver], max_steps: int, system_prompt: Optional[str]) -> None:
        self._toolkit = toolkit
        specs = [convert_to_openai_tool(t) for t in toolkit.get_tools()]
        self._model = model.bind_tools(specs)
        self._approver = approver
        self._max_steps = max_steps
        self._system_prompt = system_prompt
        self.last_report: Optional[dict] = None

    def invoke(self, input: dict, config: Any = None) -> dict:
        messages = [_to_core(m) for m in input["messages"]]

        def chat(request_json: str) -> str:
            request = json.loads(request_json)
            ai = self._model.invoke([_to_lc(m) for m in request["messages"]])
            return json.dumps(_from_ai(ai))

        approve = None
        if self._approver is not None:
            approver = self._approver

            def approve(request_json: str) -> str:
                r = json.loads(request_json)
                p = r["preview"]
                request = _approval_request(r["tool"], r["arguments"], p)
                return json.dumps(_first_decision(approver(request)))

        report = _native.run_agent(self._toolkit.native, chat, json.dumps(messages), self._max_steps, self._system_prompt, approve)
        self.last_report = report
        return {"messages": [_to_lc(m) for m in report["transcript"] if m["role"] != "system"]}

    async def ainvoke(self, input: dict, config: Any = None) -> dict:
        return await asyncio.to_thread(self.invoke, input, config)


def create_sre_agent(
    model: Any,
    *,
    approver: Optional[Approver] = None,
    max_steps: int = 10,
    system_prompt: Optional[str] = None,
    toolkit: Optional[SreToolkit] = None,
) -> SreAgent:
    """The Rust agent loop on any LangChain chat model: ``bind_tools`` with the tools' OpenAI-format
    specs, then one ``invoke`` per turn. Writes need ``approver`` (else they are denied). Returns an
    object with ``invoke`` / ``ainvoke`` taking and returning ``{"messages": [...]}``."""
    return SreAgent(model, toolkit or SreToolkit(), approver, max_steps, system_prompt)
