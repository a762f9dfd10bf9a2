"""The editor-agnostic engine: definitions, models, budget, audit, runtime, tools."""
