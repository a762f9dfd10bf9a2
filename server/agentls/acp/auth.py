"""The authentication method `initialize` offers: none is needed, and what to set for a model.

agentls has no account to log in to: it runs the model the user configures. Panels and the ACP
registry still want an `authMethods` entry of type `agent` (the default type, given by no `type`
field; the registry's CI refuses an agent without one), so agentls offers one whose description
says where the model comes from; `authenticate` with it succeeds at once.
"""

from __future__ import annotations

from acp.schema import AuthMethodAgent

from acp import RequestError
from agentls.core.user_settings import user_settings_file

NO_LOGIN = "agentls-no-login"


def auth_methods() -> list[AuthMethodAgent]:
    return [
        AuthMethodAgent(
            id=NO_LOGIN,
            name="No login needed",
            description=(
                "No account is needed: agentls runs the model you configure. Set "
                "OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server such as Ollama or "
                "vLLM; AGENTLS_MODEL names the model) in the agent's environment, which is the "
                "`env` of the panel's agent settings, or put baseUrl and model in "
                f"{user_settings_file()}, or start it with --model and --base-url. "
                "With none set it runs the embedded model of agentls[local]. The folders whose "
                f"own agents and tools you trust are listed in {user_settings_file()}."
            ),
        )
    ]


def check_method(method_id: str) -> None:
    """Succeed for the offered method; name the ones offered otherwise."""
    if method_id != NO_LOGIN:
        raise RequestError.invalid_params(
            {"methodId": f"unknown method {method_id!r}; agentls offers {NO_LOGIN!r}"}
        )
