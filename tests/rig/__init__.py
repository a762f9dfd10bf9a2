"""Test rigs: stand-ins for the network and other outside services used by tests and benchmarks."""
