"""Porting a LangChain ReAct agent from hand-written Python Kubernetes tools to SreToolkit.

Before, a typical proof of concept declared its own tools:

    @tool
    def list_pods(namespace: str) -> str:
        return str(kubernetes.client.CoreV1Api().list_namespaced_pod(namespace))
    @tool
    def patch_image(namespace: str, deployment: str, container: str, image: str) -> str:
        ...  # patched with no preview, no approval, no precondition
    agent = create_agent(model, [list_pods, patch_image])

After: the same agent, with the Rust tools — compact outputs, schema-validated arguments, a
server-side dry run shown to the approver, resourceVersion preconditions, verification and rollback:

    python3 sre-py/examples/react_port.py           # runs offline on the simulator with a scripted model
"""

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

from sre_agent import SreToolkit


class ScriptedModel(GenericFakeChatModel):
    """Stands in for your chat model (ChatGroq, AzureChatOpenAI, ChatBedrockConverse…)."""

    def bind_tools(self, tools, **kwargs):
        return self


def approve_at_terminal(request: dict) -> dict:
    action = request["action_requests"][0]
    print(f"\n{action['description']}")
    answer = input(f"Approve {action['name']}? [y/N] ").strip().lower()
    return {"decisions": [{"type": "approve"} if answer in ("y", "yes") else {"type": "reject", "message": "declined"}]}


def main() -> None:
    # The port is these two lines: the toolkit replaces the hand-written tools.
    toolkit = SreToolkit(simulator="bad-release", approver=approve_at_terminal)  # SreToolkit() for your kube context
    tools = toolkit.get_tools()

    model = ScriptedModel(
        messages=iter(
            [
                AIMessage("", tool_calls=[{"id": "1", "name": "k8s_find_unhealthy", "args": {}, "type": "tool_call"}]),
                AIMessage("", tool_calls=[{"id": "2", "name": "k8s_rollback", "args": {"namespace": "shop", "deployment": "web"}, "type": "tool_call"}]),
                AIMessage("shop/web 1.5.0 crash-looped on a missing DATABASE_URL; rolled back to 1.4.2."),
            ]
        ),
        disable_streaming=True,
    )
    agent = create_agent(model, tools)
    state = agent.invoke({"messages": [HumanMessage("shop/web is failing; fix it")]})
    for m in state["messages"]:
        print(f"[{m.type}] {m.content if isinstance(m.content, str) else m.content}"[:300])
    toolkit.native.close()


if __name__ == "__main__":
    main()
