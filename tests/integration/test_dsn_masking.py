"""No password in a DSN, in any spelling, reaches an error, a log line or the CLI's output.

Every spelling libpq accepts (and two it refuses) goes through each path:
the `ConfigurationError` of `open_backend` and of `PostgresReviewStore.setup`
(message and full traceback), every log record emitted meanwhile (any
logger, DEBUG and up, plus a service logging the error with its traceback),
and the CLI's stderr. The server is real: an unreachable port for the
failures, the test PostgreSQL server (trust authentication, so any password
is accepted) for the log line of a backend that opens.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlencode

import pytest
from psycopg.conninfo import conninfo_to_dict

from hitl_compliance import ConfigurationError, mask_url, open_backend
from hitl_compliance.cli import main
from hitl_compliance.stores.postgres import PostgresReviewStore

SECRET = "s3cret"  # every spelling's password contains it; none may print it


Extra = Mapping[str, str]


def _query(extra: Extra, sep: str = "?") -> str:
    return sep + urlencode(extra, quote_via=quote) if extra else ""


def _pairs(extra: Extra) -> str:
    return "".join(f" {key}='{value}'" for key, value in extra.items())


def _url(host: str, port: str, user: str, db: str, extra: Extra) -> str:
    return f"postgresql://{user}:{SECRET}-pw@{host}:{port}/{db}{_query(extra)}"


def _url_query(host: str, port: str, user: str, db: str, extra: Extra) -> str:
    return f"postgresql://{user}@{host}:{port}/{db}?password={SECRET}-pw{_query(extra, '&')}"


def _keyvalue(host: str, port: str, user: str, db: str, extra: Extra) -> str:
    return f"host={host} port={port} user={user} password={SECRET}-pw dbname={db}{_pairs(extra)}"


def _quoted(host: str, port: str, user: str, db: str, extra: Extra) -> str:
    return (
        f"host={host} port={port} user={user} password = '{SECRET} pw\\'s' "
        f"dbname={db}{_pairs(extra)}"
    )


def _no_equals(host: str, port: str, user: str, db: str, extra: Extra) -> str:
    return f"host={host} port={port} user={user} password{SECRET}-pw dbname={db}"


def _unterminated(host: str, port: str, user: str, db: str, extra: Extra) -> str:
    return f"host={host} port={port} user={user} password='{SECRET} pw dbname={db}"


Spelling = Callable[..., str]
VALID: dict[str, Spelling] = {
    "url": _url,
    "url-query": _url_query,
    "keyvalue": _keyvalue,
    "keyvalue-quoted": _quoted,
}
MALFORMED: dict[str, Spelling] = {
    "malformed-no-equals": _no_equals,
    "malformed-quote": _unterminated,
}
ALL = {**VALID, **MALFORMED}


def unreachable(spelling: Spelling) -> str:
    """The DSN in this spelling for a port where nothing listens."""
    return spelling("127.0.0.1", "1", "hitl", "nowhere", {"connect_timeout": "2"})


def assert_masked(text: str) -> None:
    """`text` names the DSN (with `***` where the password was) but never the password."""
    assert SECRET not in text, text
    assert "***" in text, text


def full_text(exc: BaseException) -> str:
    """The message and the traceback a log handler would print, chained causes included."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class TestMaskUrl:
    """mask_url (public) masks each spelling and leaves the rest readable."""

    @pytest.mark.parametrize("name", ALL)
    def test_each_spelling(self, name: str) -> None:
        """The password goes, host, port and user stay."""
        masked = mask_url(unreachable(ALL[name]))
        assert_masked(masked)
        assert "127.0.0.1" in masked
        assert "hitl" in masked

    @pytest.mark.parametrize(
        ("dsn", "masked"),
        [
            ("host=db password=p user=u", "host=db password=*** user=u"),
            ("host=db password='a b\\' c' user=u", "host=db password=*** user=u"),
            ("host=db sslpassword=k passfile=/p", "host=db sslpassword=*** passfile=/p"),
            ("host=db passwordp user=u", "host=db ***"),
            ("postgresql://u:p@db/x?sslpassword=k", "postgresql://u:***@db/x?sslpassword=***"),
            ("sqlite:///reviews.db", "sqlite:///reviews.db"),
        ],
    )
    def test_exact_output(self, dsn: str, masked: str) -> None:
        """Only the secret values change; a string that stops parsing is masked from there on."""
        assert mask_url(dsn) == masked


class TestOpenBackendError:
    """open_backend's ConfigurationError never carries the password."""

    @pytest.mark.parametrize("name", ALL)
    async def test_error_and_log_records(self, name: str, caplog: pytest.LogCaptureFixture) -> None:
        """Message, traceback and every log record (a service logging it too) are masked."""
        caplog.set_level(logging.DEBUG)
        dsn = unreachable(ALL[name])
        with pytest.raises(ConfigurationError) as info:
            async with open_backend(dsn, connect_timeout=5):
                pytest.fail("an unreachable backend opened")
        assert_masked(str(info.value))
        assert SECRET not in full_text(info.value)
        logging.getLogger("service").exception("backend failed", exc_info=info.value)
        assert caplog.records, "the service's log line was not captured"
        assert SECRET not in caplog.text
        for record in caplog.records:
            assert SECRET not in record.getMessage()

    @pytest.mark.parametrize("name", MALFORMED)
    async def test_malformed_says_so(self, name: str) -> None:
        """A DSN libpq cannot parse is reported as malformed, not as an unknown scheme."""
        with pytest.raises(ConfigurationError, match="connection string") as info:
            async with open_backend(unreachable(MALFORMED[name])):
                pytest.fail("a malformed DSN opened")
        assert "Unsupported backend" not in str(info.value)


class TestStoreSetupError:
    """PostgresReviewStore.from_conn_string(...).setup() errors and logs are masked."""

    @pytest.mark.parametrize("name", ALL)
    async def test_error_and_log_records(self, name: str, caplog: pytest.LogCaptureFixture) -> None:
        """The store's error and the pool's own log records never print the password."""
        caplog.set_level(logging.DEBUG)
        store = PostgresReviewStore.from_conn_string(unreachable(ALL[name]), open_timeout=2)
        with pytest.raises(ConfigurationError) as info:
            await store.setup()
        await store.aclose()
        assert SECRET not in full_text(info.value)
        assert SECRET not in caplog.text
        for record in caplog.records:
            assert SECRET not in record.getMessage()


class TestCliStderr:
    """The CLI's one-line error (exit 2) never prints the password."""

    @pytest.mark.parametrize("name", ALL)
    def test_pending(self, name: str, capsys: pytest.CaptureFixture[str]) -> None:
        """pending --backend DSN on an unreachable server exits 2 with the DSN masked."""
        code = main(["pending", "--backend", unreachable(ALL[name])])
        out, err = capsys.readouterr()
        assert code == 2
        assert out == ""
        assert err.startswith("error: ConfigurationError: ")
        assert_masked(err)


@pytest.mark.postgres
class TestOpenedBackendLog:
    """A backend that opens logs where it is, with the password masked."""

    @pytest.mark.parametrize("name", VALID)
    async def test_opened_line(
        self, name: str, postgres_dsn: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The INFO line naming the opened backend, and Backend.url, show `***` only."""
        caplog.set_level(logging.DEBUG)
        parts = {k: str(v) for k, v in conninfo_to_dict(postgres_dsn).items()}
        dsn = VALID[name](
            parts.get("host", "127.0.0.1"),
            parts.get("port", "5432"),
            parts["user"],
            parts["dbname"],
            {"options": parts["options"]},
        )
        async with open_backend(dsn, table_prefix=f"t{uuid.uuid4().hex[:8]}_") as backend:
            assert_masked(backend.url)
            assert await backend.reviews.list_pending() == []
        opened = [r for r in caplog.records if r.name == "hitl_compliance" and "opened" in r.msg]
        assert len(opened) == 1
        assert_masked(opened[0].getMessage())
        assert SECRET not in caplog.text
