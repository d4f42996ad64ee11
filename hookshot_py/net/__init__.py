"""Outbound networking shared by the service packages (the URL guard, `Retry-After`)."""
