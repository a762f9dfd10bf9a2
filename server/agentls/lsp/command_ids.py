"""The ids of the server's workspace/executeCommand commands (the wire contract in docs/protocol.md)."""

DELEGATE = "agentls.delegate"
DELEGATE_PARALLEL = "agentls.delegateParallel"
CREATE_AGENT = "agentls.createAgent"
CANCEL = "agentls.cancel"
LIST_AGENTS = "agentls.listAgents"
BUDGET = "agentls.budget"
AUDIT = "agentls.audit"
