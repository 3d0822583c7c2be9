"""`hitl-compliance --remote`: the options checked before any server is asked anything.

The commands themselves run against a real `langgraph dev` in
`tests/server/test_remote_coordinator.py`.
"""

from __future__ import annotations

import pytest

from hitl_compliance import RoleBasedPolicy
from hitl_compliance.cli import REMOTE_TOKEN_ENV, build_parser, load_policy, main, remote_graph
from hitl_compliance.errors import ConfigurationError

POLICY = RoleBasedPolicy(rule_roles={"guarantee": "compliance_officer"})
NOT_A_POLICY = 42


def make_policy() -> RoleBasedPolicy:
    return POLICY


def test_remote_needs_a_graph(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pending", "--remote", "http://127.0.0.1:9", "--backend", "memory://"])
    assert code == 2
    assert "--graph" in capsys.readouterr().err


def test_remote_and_app_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["pending", "--remote", "http://127.0.0.1:9", "--graph", "compliance"]
    argv += ["--backend", "memory://", "--app", "myservice.review:make_app"]
    assert main(argv) == 2
    assert "--app" in capsys.readouterr().err


@pytest.mark.parametrize("every", ["0", "-1", "nan", "inf", "soon"])
def test_every_must_be_positive_seconds(every: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["expire", "--every", every]) == 2
    assert "--every" in capsys.readouterr().err


def test_every_and_remote_parse_after_the_command() -> None:
    args = build_parser().parse_args(
        ["expire", "--every", "0.5", "--remote", "http://h", "--graph", "g", "--policy", "m:p"]
    )
    assert (args.every, args.remote, args.graph, args.policy) == (0.5, "http://h", "g", "m:p")


def test_load_policy_takes_an_instance_or_a_function() -> None:
    assert load_policy("tests.unit.test_cli_remote:POLICY") is POLICY
    assert load_policy("tests.unit.test_cli_remote:make_policy") is POLICY
    with pytest.raises(ConfigurationError, match="not an ApprovalPolicy"):
        load_policy("tests.unit.test_cli_remote:NOT_A_POLICY")
    with pytest.raises(ConfigurationError, match="module:attr"):
        load_policy("no-colon")


def test_bad_policy_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["pending", "--remote", "http://127.0.0.1:9", "--graph", "compliance"]
    argv += ["--backend", "memory://", "--policy", "tests.unit.test_cli_remote:NOT_A_POLICY"]
    assert main(argv) == 2
    assert "--policy" in capsys.readouterr().err


async def test_remote_graph_sends_the_token_as_a_bearer_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REMOTE_TOKEN_ENV, "s3cret")
    graph = remote_graph("http://127.0.0.1:9", "compliance", "s3cret")
    try:
        assert graph.assistant_id == "compliance"
        assert graph.client is not None
        assert graph.client.http.client.headers["Authorization"] == "Bearer s3cret"
    finally:
        assert graph.client is not None
        await graph.client.aclose()
        assert graph.sync_client is not None
        graph.sync_client.close()
