"""The Agent Client Protocol adapter: `agentls acp` serves the engine to editors' agent panels.

Zed, JetBrains, Neovim (CodeCompanion) and Emacs (agent-shell) start it on stdio. The official
Python SDK (`acp`) is imported only here, and only when the command runs.
"""
