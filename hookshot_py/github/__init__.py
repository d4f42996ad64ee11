"""GitHub: webhook verification (`verify`), repo connection state (`state`), message formatting
(`format`, `labels`, `payload`), the REST client (`client`, `errors`) and OAuth (`oauth`)."""
