"""agentls: delegate code to AI agents from any LSP editor."""

__version__ = "0.1.0"
