"""Hostile and broken input, generated: the intake never answers 5xx and never keeps what it refuses;
the projector reads any accepted body without an error."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mps_callback.errors import Refused
from mps_callback.project.parse import parse
from mps_callback.verify.redact import redact
from mps_callback.verify.shape import recognise
from tests.support.bodies import fixture_files, load_fixture
from tests.support.db import count, query
from tests.support.service import InProcessService

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
NASTY = [None, "", 0, -1, 2**63 - 1, 1.7976931348623157e308, True, [], {}, "x" * (1 << 20), [None], {"": None}, "null"]
TEMPLATES = [load_fixture(path) for path in fixture_files("vod") + fixture_files("live") + fixture_files("examples")]


def mutate(body: dict, rng: random.Random, count: int) -> dict:
    """Replace ``count`` random nodes of ``body`` with values of the wrong type."""
    mutated = copy.deepcopy(body)
    for _ in range(count):
        parent, key = _random_slot(mutated, rng)
        if parent is not None:
            parent[key] = copy.deepcopy(rng.choice(NASTY))
    return mutated


def _random_slot(node, rng):
    slots = []

    def walk(value):
        if isinstance(value, dict):
            for key, child in value.items():
                if key not in ("EventType", "NotificationType"):
                    slots.append((value, key))
                walk(child)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                slots.append((value, index))
                walk(child)

    walk(node)
    return rng.choice(slots) if slots else (None, None)


@given(seed=st.integers(0, 2**32), template=st.sampled_from(range(len(TEMPLATES))), count=st.integers(1, 12))
@settings(max_examples=300, deadline=None)
def test_parse_reads_any_mutation_of_a_real_body(seed: int, template: int, count: int):
    body = mutate(TEMPLATES[template], random.Random(seed), count)
    try:
        recognise(body)
        redact(body)
    except Refused:
        return  # the intake refuses it (400): it never reaches the projector
    projection = parse(body)
    assert projection.task_id
    orjson.dumps(projection)  # everything it holds can be stored as JSON


@pytest.fixture(scope="module")
def hostile_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessService]:
    directory = tmp_path_factory.mktemp("hostile")
    with InProcessService(f"sqlite:///{directory / 'j.db'}", directory) as service:
        yield service


def _rows(service: InProcessService) -> int:
    return count(service.database_url)


@given(document=json_values)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_json_is_answered_without_server_errors(hostile_service: InProcessService, document):
    before = _rows(hostile_service)
    response = hostile_service.post(orjson.dumps(document))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["message"] and _rows(hostile_service) == before


@given(seed=st.integers(0, 2**32), template=st.sampled_from(range(len(TEMPLATES))), mutations=st.integers(1, 8))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mutated_real_bodies_are_kept_or_refused_cleanly(
    hostile_service: InProcessService, seed: int, template: int, mutations: int
):
    """Kept or refused here; that what is kept projects cleanly is the test below, on bodies of its own."""
    body = mutate(TEMPLATES[template], random.Random(seed), mutations)
    before = _rows(hostile_service)
    response = hostile_service.post(orjson.dumps(body))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert _rows(hostile_service) == before


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"EventType": "WorkflowTask", "X": NaN}', 400),
        (b'{"EventType": "WorkflowTask", "X": Infinity}', 400),
        (b'{"EventType": "WorkflowTask", "X": "\\ud800"}', 400),
        (b'\xef\xbb\xbf{"EventType": "WorkflowTask"}', 400),
        (b'{"EventType": "WorkflowTask", "X": 123456789012345678901234567890}', 200),  # valid JSON: kept
    ],
    ids=["nan", "infinity", "lone-surrogate", "bom", "huge-int"],
)
def test_json_edge_cases_are_answered_without_server_errors(hostile_service: InProcessService, raw: bytes, status: int):
    before = _rows(hostile_service)
    response = hostile_service.post(raw)
    assert response.status_code == status and response.json()["message"]
    assert _rows(hostile_service) == before + (status == 200)


def test_every_accepted_mutation_projects_without_an_error(tmp_path: Path):
    """Mutated real bodies of its own (seeded), on a service of its own: each one taken is projected cleanly."""
    rng = random.Random(20261124)
    bodies = [mutate(template, rng, rng.randint(1, 8)) for template in TEMPLATES for _ in range(3)]
    with InProcessService(f"sqlite:///{tmp_path / 'j.db'}", tmp_path) as service:
        accepted = sum(service.post(orjson.dumps(body)).status_code == 200 for body in bodies)
        assert accepted > len(bodies) // 2, f"only {accepted} of {len(bodies)} taken: the test would prove little"
        journaled = count(service.database_url)  # a retry of the same mutation is one row
        assert service.project() == journaled
        errors = query(service.database_url, "SELECT projection_error FROM notifications WHERE projected_at IS NULL")
        assert errors == [], errors[:3]
        assert "Traceback" not in service.logs()
