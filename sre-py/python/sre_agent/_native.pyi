"""Type stubs of the private native module (Rust, pyo3)."""

from typing import Any, Callable, Optional

class SreError(Exception): ...
class ToolError(SreError): ...
class InvalidArguments(ToolError): ...
class Forbidden(ToolError): ...
class NotFound(ToolError): ...
class Conflict(ToolError): ...
class ApprovalDenied(SreError): ...
class ProviderError(SreError): ...

class Tools:
    @staticmethod
    def simulator(scenario: str) -> "Tools": ...
    @staticmethod
    def kubeconfig(namespaces: Optional[list[str]] = None) -> "Tools": ...
    @property
    def url(self) -> Optional[str]: ...
    approval_ttl: float
    def specs(self) -> list[dict]: ...
    def call(self, name: str, args: str) -> tuple[str, Any]: ...
    async def call_async(self, name: str, args: str) -> tuple[str, Any]: ...
    async def preview_async(self, name: str, args: str) -> dict:
        """:meth:`preview` as an awaitable."""
    async def apply_async(self, name: str, args: str, fingerprint: str, approved_by: str) -> dict: ...
    def preview(self, name: str, args: str) -> dict:
        """The plan of a write (a server-side dry run; nothing is changed), as a dict:
        ``summary``, ``diff``, ``fingerprint`` (the action fingerprint :meth:`apply` needs),
        ``target_fingerprint``, ``risk``, ``target``, ``images``, ``warning``, ``expires_at``, and
        why the write is proposed:

        - ``evidence``: ``None``, or a dict with ``vulnerabilities`` (for an image patch:
          ``container``; ``current`` and ``candidate`` scans, each ``{"image", "digest",
          "counts": {"critical", "high", "medium", "low", "unknown"}, "findings": [{"id",
          "severity", "package", "installed", "fixed", "cvss"}], "source": {"kind": "trivy-cli" |
          "trivy-operator" | "simulated", ...}}``; and the CRITICAL/HIGH ids it ``clears``, that
          ``remains`` and that it ``introduces``) and/or ``crash`` (for a rollback: ``pod``,
          ``container``, ``image``, ``reason``, ``exit_code``, ``restarts``, ``failing_pods``,
          ``last_log_lines``, ``events``). Absent keys mean the tool did not say.
        - ``evidence_text``: ``None``, or those facts in a few lines for a human (escaped; long
          lists cut — the full lists are in ``evidence``).
        """
    def apply(self, name: str, args: str, fingerprint: str, approved_by: str) -> dict: ...
    def hitl_claim(self, slot: str, key: str) -> str: ...
    def hitl_finish(self, slot: str, key: str, ok: bool, text: str) -> None: ...
    def hitl_ask(self, key: str, action: str, request: str) -> str: ...
    def hitl_asks(self, key: str) -> str: ...
    def hitl_shown(self, key: str, index: int) -> None: ...
    def hitl_resolve(self, key: str, index: int, answer: str, fresh: str) -> str: ...
    def close(self) -> None: ...
    def deployment_images(self, namespace: str, deployment: str) -> list[list[str]]: ...

def run_agent(
    tools: Tools,
    chat: Callable[[str], str],
    messages: str,
    max_steps: int = 10,
    system_prompt: Optional[str] = None,
    approve: Optional[Callable[[str], str]] = None,
) -> dict:
    """Runs the Rust agent loop with a Python-driven model; returns the run report as a dict.

    ``approve`` gets each approval request as JSON: ``{"run_id", "tool", "call_id", "arguments",
    "description", "incident", "writes_so_far", "rollback_on_failure", "preview"}``, where
    ``description`` is the request as the terminal prompt shows it (evidence included) and
    ``preview`` is the plan as :meth:`Tools.preview` shows it, with ``evidence`` and
    ``evidence_text``. It answers ``{"type": "approve"}`` or ``{"type": "reject", "message"}``
    as JSON.
    """

def run_task(
    tools: Tools,
    task: str,
    provider: str = "offline",
    model: Optional[str] = None,
    max_steps: int = 20,
    approve: Optional[Callable[[str], str]] = None,
    auto_approve: bool = False,
    namespaces: Optional[list[str]] = None,
    registries: Optional[list[str]] = None,
    max_writes: int = 3,
    max_risk: Optional[str] = None,
) -> dict:
    """Runs the agent on ``task`` with a provider by name; ``approve`` gets the same request as
    :func:`run_agent`'s (``description`` and ``preview.evidence`` included)."""
