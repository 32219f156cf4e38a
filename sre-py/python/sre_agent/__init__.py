"""sre-agent: an autonomous Kubernetes SRE / DevSecOps agent in Rust, for Python.

- :class:`SreToolkit` — the Rust tools as LangChain tools (needs ``sre-agent[langchain]``).
- :func:`create_sre_agent` — the Rust agent loop driven by any LangChain chat model.
- The native layer (``Tools``, ``run_agent``) and the exception hierarchy, usable without LangChain.
"""

from ._native import (
    ApprovalDenied,
    Conflict,
    Forbidden,
    InvalidArguments,
    NotFound,
    ProviderError,
    SreError,
    ToolError,
    Tools,
    run_agent,
    run_task,
)

__all__ = [
    "ApprovalDenied",
    "Conflict",
    "Forbidden",
    "InvalidArguments",
    "NotFound",
    "ProviderError",
    "SreError",
    "SreToolkit",
    "ToolError",
    "Tools",
    "create_sre_agent",
    "run",
    "run_agent",
    "run_task",
]


def run(
    task: str,
    *,
    tools: "Tools",
    provider: str = "offline",
    model: "str | None" = None,
    max_steps: int = 20,
    approver=None,
    auto_approve: bool = False,
    namespaces: "list[str] | None" = None,
    registries: "list[str] | None" = None,
    max_writes: int = 3,
    max_risk: "str | None" = None,
) -> dict:
    """Runs the Rust agent with a provider by name on ``task``; returns the run report as a dict.

    Policy: deny by default. ``approver`` takes the approval request (a dict) and returns
    ``{"type": "approve"}`` or ``{"type": "reject", "message": ...}``; ``auto_approve=True`` approves
    every write (opt-in). Either sits behind rules: ``namespaces`` and ``registries`` allow-lists,
    at most ``max_writes`` writes per run and nothing riskier than ``max_risk`` (``"low"``,
    ``"medium"``, ``"high"``). ``auto_approve`` has safe defaults: ``max_risk="medium"`` (never a
    scale to zero) and, without ``registries``, every image stays in the repository its container
    runs now.
    """
    import json

    approve = None
    if approver is not None:

        def approve(request_json: str) -> str:
            return json.dumps(approver(json.loads(request_json)))

    return run_task(tools, task, provider, model, max_steps, approve, auto_approve, namespaces, registries, max_writes, max_risk)


def __getattr__(name: str):
    # The LangChain adapters import langchain-core lazily: the native module never does.
    if name in ("SreToolkit", "create_sre_agent"):
        from . import langchain as _lc

        return getattr(_lc, name)
    raise AttributeError(f"module 'sre_agent' has no attribute {name!r}")
