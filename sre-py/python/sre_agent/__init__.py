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
    "run_agent",
]


def __getattr__(name: str):
    # The LangChain adapters import langchain-core lazily: the native module never does.
    if name in ("SreToolkit", "create_sre_agent"):
        from . import langchain as _lc

        return getattr(_lc, name)
    raise AttributeError(f"module 'sre_agent' has no attribute {name!r}")
