"""The shared forge layer: HTTP client base, declared models, inbound verification, the webhook
store and project-hook policy, and the connection type base. How a forge plugs in: README.md."""
