"""Token management from the command line."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dashboard.models import AgentToken

pytestmark = pytest.mark.django_db


def test_create_token_enrolls_the_node_and_prints_the_token() -> None:
    out = StringIO()
    call_command("create_token", "prod-eu", "win-node-01", stdout=out)
    raw = out.getvalue().strip()
    assert AgentToken.authenticate(raw).node.name == "win-node-01"


def test_create_token_refuses_a_bad_name() -> None:
    with pytest.raises(CommandError, match="not a valid node name"):
        call_command("create_token", "prod-eu", "Bad_Name")


def test_revoke_token_revokes_every_active_token_of_the_node() -> None:
    out = StringIO()
    call_command("create_token", "prod-eu", "win-node-01", stdout=out)
    call_command("revoke_token", "prod-eu", "win-node-01", stdout=StringIO())
    assert AgentToken.authenticate(out.getvalue().strip()) is None
    with pytest.raises(CommandError, match="no active token"):
        call_command("revoke_token", "prod-eu", "win-node-01")


def test_remove_node_deletes_the_node_and_its_tokens_stop_working() -> None:
    from dashboard.models import Node, enroll

    _node, raw = enroll("prod-eu", "win-node-01")
    out = StringIO()
    call_command("remove_node", "prod-eu", "win-node-01", "--yes", stdout=out)
    assert "removed prod-eu/win-node-01" in out.getvalue()
    assert not Node.objects.exists() and AgentToken.authenticate(raw) is None


def test_remove_node_refuses_an_unknown_node() -> None:
    with pytest.raises(CommandError, match="no node prod-eu/nope"):
        call_command("remove_node", "prod-eu", "nope", "--yes")


def test_the_demo_on_a_busy_port_says_which_option_to_change() -> None:
    import signal
    import socket

    handler = signal.getsignal(signal.SIGTERM)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"port {port} is already in use: choose another with --port"):
            call_command("demo", "--port", str(port), "--no-agents")
    # Its Ctrl-C handling is undone: a SIGTERM to this process is no KeyboardInterrupt later.
    assert signal.getsignal(signal.SIGTERM) is handler
