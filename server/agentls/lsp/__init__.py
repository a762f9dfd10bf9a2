"""The pygls adapter: one module per LSP feature."""
