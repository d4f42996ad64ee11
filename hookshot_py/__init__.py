"""hookshot_py: a Matrix application service connecting rooms to code forges and webhooks."""

__version__ = "0.1.0"
