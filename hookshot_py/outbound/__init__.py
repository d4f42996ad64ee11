"""Outbound webhooks (hookshot's `uk.half-shot.matrix-hookshot.outbound-hook`): every non-state
event other users send in the room goes to the hook's URL, as hookshot sends it, signed, from a
durable queue in Postgres with retries, past the outbound-URL guard.

- `connection.py`: the connection type (state, token, queueing the room's events);
- `tokens.py`: the `hs-ob-` token and hookshot's encrypted copy in the bot's account data;
- `queue.py`: the queue and delivery log in Postgres, and the one place hooks are claimed;
- `request.py`: one delivery attempt (multipart body, media part, headers, signature);
- `sender.py`: the background worker (claims, retries with backoff, final failures);
- `commands.py`, `routes.py`, `integration.py`: `!hookshot outbound-hook`, the delivery log API, wiring.
"""
