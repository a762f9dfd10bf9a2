"""The MCP server adapter: `agentls mcp-server` offers delegation to agentls agents as MCP tools."""
