"""RSS, Atom and JSON Feed subscriptions (`uk.half-shot.matrix-hookshot.feed`): fetching through the
URL guard, parsing off the event loop, item identity, hookshot's message templates, the Postgres
store of seen items and poll state, the poller, the connection type and `!hookshot feed` commands."""
