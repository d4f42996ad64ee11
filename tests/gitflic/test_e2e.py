"""GitFlic end to end: a delivery from (fake) GitFlic reaches a real Synapse room, also after a restart."""

from __future__ import annotations

import json

from hookshot_py.gitflic.format import format_delivery
from hookshot_py.gitflic.delivery import parse_delivery
from support.fixtures import BOT, room_with_bot
from support.helpers import is_notice_with


async def test_deliveries_reach_the_room_and_survive_a_restart(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets"})
    assert status == 200, body
    secret = env.only_hook().secret

    issue = env.payload("issue_create")
    assert (await env.deliver(issue, secret))[0] == 200
    expected_body, expected_html = format_delivery(
        parse_delivery(json.dumps(issue).encode()), instance_url="https://gitflic.ru", project=env.key
    )
    msg = await alice.wait_for_message(room, is_notice_with("created issue"))
    assert msg["sender"] == BOT
    assert msg["content"]["body"] == expected_body
    assert msg["content"]["formatted_body"] == expected_html
    assert f'href="https://gitflic.ru/project/{env.owner}/widgets/issue/12"' in expected_html

    # the secret and the project id come back from Postgres after a restart
    await env.harness.restart()
    assert (await env.deliver(env.payload("test_webhook"), secret))[0] == 200
    await alice.wait_for_message(room, is_notice_with("GitFlic test delivery for"))
    assert (await env.deliver(env.payload("merge"), "not-the-secret"))[0] == 401
    assert (await env.deliver(env.payload("merge"), secret))[0] == 200
    merged = await alice.wait_for_message(room, is_notice_with(" merged merge request "))
    assert f"[{env.key}!5](https://gitflic.ru/project/{env.owner}/widgets/merge-request/5)" in merged["content"]["body"]
