"""The sink configuration: every mistake is one line naming the sink and quoting no secret;
URLs are shown only without their credentials."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mps_callback.forward.config import (
    DEFAULT_RETRY_SCHEDULE,
    ForwardConfigError,
    SinkConfig,
    from_environment,
    load,
    safe_url,
)
from mps_callback.forward.event import EVENT_TYPES
from mps_callback.forward.sinks import SINKS, Sink
from tests.support.forward import SECRET, make_event

PASSWORD = "Sup3r-s3cret"
GOOD = f"""
[[sink]]
name = "app"
url = "https://hook:{PASSWORD}@app.example.com/hooks/mps"
secret = "{SECRET}"
events = ["task.finished", "task.failed"]
kinds = ["vod"]
event_types = ["WorkflowTask"]
retry_schedule = [5, 300, 1800, 7200]

[[sink]]
name = "rabbit"
url = "amqp://guest:{PASSWORD}@127.0.0.1:5672/?exchange=mps.events"

[[sink]]
name = "people"
url = "apprise+wecombot://ROBOTKEY{PASSWORD}"
events = ["task.failed"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "forward.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_gives_checked_sinks_with_defaults(tmp_path: Path) -> None:
    app, rabbit, people = load(write(tmp_path, GOOD))
    assert app.name == "app" and app.events == ("task.finished", "task.failed") and app.kinds == ("vod",)
    assert app.retry_schedule == (5, 300, 1800, 7200)
    assert rabbit.events == EVENT_TYPES and rabbit.kinds == ("vod", "live") and rabbit.event_types == ()
    assert rabbit.retry_schedule == DEFAULT_RETRY_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert people.safe_url == "apprise+wecombot://***"
    for sink in (app, rabbit, people):
        assert PASSWORD not in repr(sink) and PASSWORD not in str(sink) and SECRET not in repr(sink)
        assert PASSWORD not in sink.safe_url
        opened: Sink = sink.open()
        assert opened.name == sink.name and PASSWORD not in repr(opened)


def test_from_environment(tmp_path: Path) -> None:
    assert from_environment({}) == ()
    assert from_environment({"MPS_FORWARD_CONFIG": ""}) == ()
    sinks = from_environment({"MPS_FORWARD_CONFIG": str(write(tmp_path, GOOD))})
    assert [sink.name for sink in sinks] == ["app", "rabbit", "people"]


def sink_table(**fields: object) -> str:
    lines = ["[[sink]]"]
    lines += [f"{name} = {value!r}".replace("'", '"') for name, value in fields.items()]
    return "\n".join(lines) + "\n"


BAD = {
    "unknown scheme": (sink_table(name="bad", url=f"ftp://u:{PASSWORD}@host/x"), "unknown scheme 'ftp'"),
    "no scheme": (sink_table(name="bad", url="host:5672"), "unknown scheme"),
    "webhook without secret": (sink_table(name="bad", url=f"https://u:{PASSWORD}@host/x"), "needs `secret`"),
    "secret on a queue": (sink_table(name="bad", url="amqp://host/", secret=SECRET), "only used by http/https"),
    "unknown event": (sink_table(name="bad", url="redis://h", events=["task.done"]), "unknown names ['task.done']"),
    "empty events": (sink_table(name="bad", url="redis://h", events=[]), "`events` is empty"),
    "unknown kind": (sink_table(name="bad", url="redis://h", kinds=["file"]), "`kinds` has unknown names"),
    "negative delay": (sink_table(name="bad", url="redis://h", retry_schedule=[5, -1]), "`retry_schedule`"),
    "empty schedule": (sink_table(name="bad", url="redis://h", retry_schedule=[]), "list of 1 to 50 waits"),
    "text delay": (sink_table(name="bad", url="redis://h", retry_schedule=["5"]), "seconds from 0 to"),
    "schedule not a list": (sink_table(name="bad", url="redis://h", retry_schedule=5), "list of 1 to 50 waits"),
    "delay past any date": (sink_table(name="bad", url="redis://h", retry_schedule=[0, 1e12]), "(a week)"),
    "delay over a week": (sink_table(name="bad", url="redis://h", retry_schedule=[604801]), "(a week)"),
    "51 attempts": (sink_table(name="bad", url="redis://h", retry_schedule=[1] * 51), "list of 1 to 50 waits"),
    "name ending in a newline": (sink_table(name="bad\n", url="redis://h"), "`name` must be"),
    "port out of range": (sink_table(name="bad", url=f"amqp://u:{PASSWORD}@h:99999/"), "port that is not"),
    "webhook secret not base64": (sink_table(name="bad", url="https://h/x", secret="whsec_hunt!!"), "not a Standard"),
    "unknown key": (sink_table(name="bad", url="redis://h", retries=3), "unknown key `retries`"),
    "bad name": (sink_table(name="bad name!", url="redis://h"), "`name` must be"),
    "missing url": (sink_table(name="bad"), "`url` is required"),
    "bad S3 template": (sink_table(name="bad", url="s3://bucket?key={month}/{id}"), "unknown placeholders"),
    "S3 template without id": (sink_table(name="bad", url="s3://bucket?key={date}.json"), "must contain {id}"),
    "apprise unknown service": (sink_table(name="bad", url=f"apprise+nosuch://{PASSWORD}"), "Apprise does not"),
    "nats wildcard subject": (sink_table(name="bad", url="nats://h?subject=a.*"), "`subject=`"),
    "mqtt wildcard topic": (sink_table(name="bad", url="mqtt://h?topic=a/%23"), "`topic=`"),
    "redis maxlen": (sink_table(name="bad", url="redis://h?maxlen=lots"), "`maxlen=` must be a whole number"),
    "sqs path": (sink_table(name="bad", url="sqs://queue/extra"), "queue name is the host"),
    "s3 half credentials": (sink_table(name="bad", url=f"s3://{PASSWORD}@bucket"), "both the key id and the secret"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_sink_is_one_line_naming_it_without_secrets(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    with pytest.raises(ForwardConfigError) as raised:
        load(write(tmp_path, GOOD + "\n" + text))
    reason = str(raised.value)
    assert "\n" not in reason
    assert "sink 'bad" in reason and expected in reason, reason
    assert PASSWORD not in reason and SECRET not in reason


def test_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(ForwardConfigError, match=r"sink 'rabbit': the name is used by another sink"):
        load(write(tmp_path, GOOD + sink_table(name="rabbit", url="redis://h")))


def test_a_sink_without_a_name_is_named_by_its_place(tmp_path: Path) -> None:
    with pytest.raises(ForwardConfigError, match=r"sink #4 \(no name\): `name` is required"):
        load(write(tmp_path, GOOD + sink_table(url="redis://h")))


def test_unparseable_toml_says_where(tmp_path: Path) -> None:
    with pytest.raises(ForwardConfigError, match=r"not valid TOML: .*line 3, column") as raised:
        load(write(tmp_path, '[[sink]]\nname = "a"\nurl = "redis://h\n'))
    assert "\n" not in str(raised.value)


def test_toml_nested_past_the_parsers_depth_is_one_line(tmp_path: Path) -> None:
    deep = '[[sink]]\nname = "a"\nurl = "redis://h"\nx = ' + "[" * 100_000 + "]" * 100_000 + "\n"
    with pytest.raises(ForwardConfigError, match="nested too deeply") as raised:
        load(write(tmp_path, deep))
    assert "\n" not in str(raised.value)


def test_unknown_top_level_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ForwardConfigError, match=r"unknown top-level keys \['sinks'\]"):
        load(write(tmp_path, '[[sinks]]\nname = "a"\n'))
    with pytest.raises(ForwardConfigError, match="cannot read it"):
        load(tmp_path / "missing.toml")


def test_wants_filters_by_event_kind_and_mps_type() -> None:
    sink = SinkConfig.model_validate(
        {
            "name": "app",
            "url": "redis://h",
            "events": ["task.failed"],
            "kinds": ["vod"],
            "event_types": ["WorkflowTask"],
        }
    )
    failed = make_event("task.failed")
    assert sink.wants(failed)
    assert not sink.wants(make_event("task.finished"))
    assert not sink.wants(replace(failed, kind="live"))
    assert not sink.wants(replace(failed, event_type="ScheduleTask"))
    assert sink.wants(replace(failed, kind=None))  # a notification.received of an unrecognised shape has no kind
    everything = SinkConfig.model_validate({"name": "all", "url": "redis://h"})
    assert all(everything.wants(make_event(type)) for type in EVENT_TYPES)


SAFE = {
    f"amqp://user:{PASSWORD}@host:5672/vhost?exchange=mps.events": "amqp://***@host:5672/vhost?exchange=mps.events",
    f"redis://:{PASSWORD}@127.0.0.1:6379/0?stream=s": "redis://***@127.0.0.1:6379/0?stream=s",
    f"nats://{PASSWORD}@h:4222?subject=a.b": "nats://***@h:4222?subject=a.b",
    f"mqtt://u:{PASSWORD}@h?topic=a/b": "mqtt://***@h?topic=a/b",
    f"https://hook:{PASSWORD}@app.example.com/hooks/mps?token={PASSWORD}": "https://***@app.example.com/***?token=***",
    f"https://hooks.slack.com/services/T000/B000/{PASSWORD}xyz": "https://hooks.slack.com/***",
    "https://app.example.com/gone/services/mysecretpathtoken/anothersecret?sig=x": "https://app.example.com/***?sig=***",
    "https://app.example.com/": "https://app.example.com/",
    f"apprise+wecombot://{PASSWORD}": "apprise+wecombot://***",
    f"apprise+json://u:{PASSWORD}@host/path": "apprise+json://***",
    f"apprise+tgram://123456:{PASSWORD}/-100123": "apprise+tgram://***",
    f"sqs://AKID:{PASSWORD}@queue?region=ap-guangzhou": "sqs://***@queue?region=ap-guangzhou",
    f"s3://AKID:{PASSWORD}@bucket/p?region=r&endpoint_url=http://u:{PASSWORD}@minio:9000&key={{id}}":
        "s3://***@bucket/p?region=r&endpoint_url=http://***@minio:9000&key={id}",
    f"http://host/p?api_key={PASSWORD}&sig={PASSWORD}": "http://host/***?api_key=***&sig=***",
    f"http://[::1:{PASSWORD}/": "http://***",
}  # fmt: skip


@pytest.mark.parametrize("url", list(SAFE))
def test_safe_url_hides_every_credential_form(url: str) -> None:
    assert safe_url(url) == SAFE[url]
    assert PASSWORD not in safe_url(url)


def test_every_scheme_in_the_table_has_a_safe_form() -> None:
    for scheme in SINKS:
        url = f"{scheme}{'wecombot' if scheme.endswith('+') else ''}://user:{PASSWORD}@host/x?token={PASSWORD}"
        assert PASSWORD not in safe_url(url), scheme
