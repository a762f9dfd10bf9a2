"""The MCP client: configured servers (config), one shared session per server (pool), and their
tools as agent tools (tools). The `mcp` SDK is imported only when a server is first used."""
