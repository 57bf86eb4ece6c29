"""Schemathesis against the app's /openapi.json: no operation answers a server error.

The document is read from the app itself (schemathesis.openapi.from_asgi) when this module
is imported: the document depends on no data, and `schema.parametrize()` needs it then to
make one test per operation. (schemathesis.pytest.from_fixture would defer it, but in
schemathesis 4.32 it reads `request.node._nodeid`, which pytest 9 no longer has.) The calls
go to a daemon served for real on loopback, with the API key set, with data that fits the
schema and data that does not. Examples are bounded: the whole run stays well under a minute.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.schemas import BaseSchema

from engine.web.app import Health, create_app
from tests.scheduler.harness import Harness
from tests.support.databases import sqlite_database
from tests.support.project import minimal_project
from tests.web.served import serve

MONDAY = datetime(2026, 3, 2, 9, tzinfo=UTC)
API_KEY = "schemathesis-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
EXAMPLES = 50  # per operation and mode


def _load() -> BaseSchema:
    """The app's own /openapi.json, read in process; the daemon behind it is thrown away."""
    with tempfile.TemporaryDirectory() as folder:
        harness = Harness(f"sqlite:///{folder}/unused.db", minimal_project(Path(folder) / "project"), MONDAY,
                          api_key=API_KEY)
        try:
            health = Health(harness.db_engine, lambda: None, lambda: MONDAY, 60.0)
            loaded = schemathesis.openapi.from_asgi("/openapi.json", create_app(health, harness.daemon.web))
        finally:
            harness.close()
    loaded.app = None  # every call goes to the served daemon below, over HTTP
    loaded.config.generation.update(
        max_examples=EXAMPLES,
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        deterministic=settings().derandomize,  # the project's hypothesis profile decides
    )
    return loaded


schema = _load()


@pytest.fixture(scope="module")
def served() -> Iterator[httpx.Client]:
    """A daemon on SQLite with its web app served on loopback, one subscriber known."""
    with tempfile.TemporaryDirectory() as folder, sqlite_database(Path(folder)) as url:
        harness = Harness(url, minimal_project(Path(folder) / "project"), MONDAY, api_key=API_KEY,
                          signup_limit_per_ip=1_000_000, signup_limit_per_address=1_000_000)
        harness.add("ann@example.com")  # so that lookups and events find someone now and then
        try:
            with serve(harness) as client:
                yield client
        finally:
            harness.close()


@schema.parametrize()
def test_no_operation_answers_a_server_error(case: Case[Any], served: httpx.Client) -> None:
    case.call_and_validate(base_url=str(served.base_url), headers=AUTH, checks=[not_a_server_error])


def test_the_served_document_is_the_one_tested(served: httpx.Client) -> None:
    assert served.get("/openapi.json").json() == schema.raw_schema
    paths = set(schema.raw_schema["paths"])
    assert {"/subscribe", "/api/events", "/api/subscribers", "/api/subscribers/{email}", "/healthz"} <= paths
