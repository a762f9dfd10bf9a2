"""The editor's settings: the one settings model lives in core (core/settings.py), shared with the
user's settings file and the other front ends; the language server fills it from its layers
(lsp/configuration.py) and keeps an untrusted workspace's own settings to tightening
(core/settings_scope.py)."""

from __future__ import annotations

from agentls.core.settings import Settings, parse_settings

LspSettings = Settings

__all__ = ["LspSettings", "parse_settings"]
