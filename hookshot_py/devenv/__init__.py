"""A local development environment: a real Synapse on loopback and a small Matrix client.

Used by the quickstart, the benchmarks and the tests; not by the bridge itself.
"""
