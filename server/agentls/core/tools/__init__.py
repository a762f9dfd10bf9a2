"""Tools an agent may call: sandboxed workspace tools, edit proposals, MCP tools."""
