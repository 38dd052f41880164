"""The events' parts on their own: the spool, topic slugs, signatures, URLs, the webhook and MQTT sinks
against a real local receiver and a real Mosquitto."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC
from pathlib import Path

import pytest

from server.events.dispatcher import Dispatcher
from server.events.messages import LiveState, PassageEvent, TodayCounts, verdict_of
from server.events.mqtt import MqttSink
from server.events.service import EventService
from server.events.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signed_headers
from server.events.topics import Topics, discovery_configs, topic_slug
from server.events.webhook import WebhookSink, describe_url
from server.history.api import CSV_FIELDS
from server.history.feed import to_record
from server.history.store import HistoryStore
from server.history.writer import HistoryWriter, WriterSettings
from server.metrics import ServerMetrics
from server.settings import ServerConfig, parse_config, parse_mqtt_url
from server.spool import Spool, SpoolError, SpoolItem
from tests.mqtt_helpers import Broker, Subscriber, retained
from tests.postgres_helpers import free_port
from tests.webhook_helpers import Receiver, ReceiverThread, verify
from vision.passages import Passage

HA_SENSOR_KEYS = {
    "name", "unique_id", "object_id", "state_topic", "value_template", "availability_topic",
    "payload_available", "payload_not_available", "device", "unit_of_measurement", "state_class",
    "device_class", "options",
}  # fmt: skip
"""Home Assistant's MQTT sensor schema (full names) for what these configs use; any other key is refused."""


def passage(location: str = "Gate 1", label: str = "without_mask") -> PassageEvent:
    uid = uuid.uuid4().hex
    body = {"uid": uid, "time": "2026-12-07T10:00:00+00:00", "start_ms": 1, "location": location,
            "label": label, "confidence": 0.9, "seconds": 1.5, "frames": 12, "size": "large",
            "label_changed": False}  # fmt: skip
    return PassageEvent(uid=uid, location=location, body=body)


def items(events: list[PassageEvent]) -> list[SpoolItem]:
    return [SpoolItem(e.uid, e.to_json()) for e in events]


def test_spool_keeps_items_across_a_reopen_and_settles_them_into_other_channels(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path)
    first = items([passage() for _ in range(5)])
    assert spool.add("history", first, limit=100) == 0
    assert spool.add("history", first[:2], limit=100) == 0  # the same uids again: kept once
    spool.close()
    spool = Spool(path)  # a restart
    taken = spool.take("history", 3)
    assert [e.uid for e in taken] == [i.uid for i in first[:3]]
    spool.mark_batch("history", [e.id for e in taken], "b1")
    # A restart before the batch was written: the same batch comes first again, and alone.
    spool.close()
    spool = Spool(path)
    again = spool.take("history", 10)
    assert [e.uid for e in again] == [e.uid for e in taken] and {e.batch for e in again} == {"b1"}
    dropped = spool.settle("history", [e.id for e in again], {"mqtt": first[:3], "webhook-1": first[:3]},
                           {"mqtt": 100, "webhook-1": 2})  # fmt: skip
    assert dropped == {"mqtt": 0, "webhook-1": 1}  # webhook-1 holds 2: its oldest went
    assert [spool.depth(c) for c in ("history", "mqtt", "webhook-1")] == [2, 3, 2]
    assert [e.uid for e in spool.take("webhook-1", 10)] == [i.uid for i in first[1:3]]
    spool.close()


def test_a_spool_in_a_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SpoolError, match="cannot open the spool file"):
        Spool(blocker / "spool.sqlite3")


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Gate 1", "gate_1"), ("Entrée Nord (B)", "entree_nord_b"), ("  a/b#c+d  ", "a_b_c_d"),
     ("Main entrance", "main_entrance")],
)  # fmt: skip
def test_topic_slug_rule(name: str, slug: str) -> None:
    assert topic_slug(name) == slug


def test_a_name_without_latin_letters_gets_a_stable_hashed_slug() -> None:
    assert topic_slug("정문") == topic_slug("정문") != topic_slug("후문")
    assert topic_slug("정문").startswith("loc_") and len(topic_slug("정문")) == 12


def test_event_settings_are_checked_with_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_config(
        ["--mqtt", "mqtts://user:p%40ss@broker.local", "--mqtt-prefix", "site/maskcam", "--webhook",
         "https://a/x", "--webhook", "http://b:8080/y"],
        environ={},
    )  # fmt: skip
    assert config.mqtt is not None
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("broker.local", 8883, True)
    assert config.mqtt.password == "p@ss" and "p@ss" not in config.mqtt.describe()
    assert config.webhook == ("https://a/x", "http://b:8080/y") and config.mqtt_prefix == "site/maskcam"
    assert parse_config([], environ={"MASKCAM_WEBHOOK": "https://a/x,https://b/y"}).webhook == (
        "https://a/x",
        "https://b/y",
    )
    for flag, value in [("--mqtt", "http://x"), ("--mqtt", "mqtt://h:99999"), ("--mqtt", "mqtt://h/t"),
                        ("--mqtt-prefix", "a/#"), ("--mqtt-prefix", "a//b"), ("--webhook", "ftp://h/x"),
                        ("--events-queue", "0")]:  # fmt: skip
        with pytest.raises(SystemExit):
            parse_config([flag, value], environ={})
        assert flag in capsys.readouterr().err


def test_discovery_configs_are_home_assistant_sensors_of_one_device() -> None:
    topics = Topics("maskcam", "homeassistant")
    configs = discovery_configs(topics, "Gate 1")
    assert len(configs) == 7
    devices = set()
    for topic, text in configs:
        config = json.loads(text)
        assert topic.startswith("homeassistant/sensor/maskcam_gate_1/") and topic.endswith("/config")
        assert set(config) <= HA_SENSOR_KEYS
        assert config["state_topic"] in (topics.state("Gate 1"), topics.today("Gate 1"))
        assert config["availability_topic"] == "maskcam/status"
        devices.add(json.dumps(config["device"], sort_keys=True))
    assert len(devices) == 1
    assert len(discovery_configs(topics, "Gate 1", include_today=False)) == 2


def test_signatures_verify_and_refuse_a_wrong_secret_a_changed_body_and_an_old_timestamp() -> None:
    body = b'{"uid":"x"}'
    headers = signed_headers("s3cret", body, now=1000)
    assert headers[SIGNATURE_HEADER] == signature("s3cret", 1000, body)
    assert verify("s3cret", headers, body, now=1010)
    assert not verify("other", headers, body, now=1010)
    assert not verify("s3cret", headers, body + b" ", now=1010)
    assert not verify("s3cret", headers, body, now=1000 + 301)
    assert not verify("s3cret", {TIMESTAMP_HEADER: "1000"}, body, now=1000)


def test_webhook_urls_are_described_without_secrets() -> None:
    assert describe_url("https://u:pw@h:8443/hook?token=abc") == "https://h:8443/hook"


def test_verdicts() -> None:
    assert verdict_of([]) == "none"
    assert verdict_of(["with_mask", "mask_worn_incorrectly"]) == "incorrect"
    assert verdict_of(["with_mask", "without_mask"]) == "unmasked"
    assert LiveState.of("G", ["with_mask"]).same_as(LiveState.of("G", ["with_mask"], at=0))


def wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def test_webhook_deliveries_are_retried_until_accepted_and_signed(tmp_path: Path) -> None:
    receiver = Receiver(secret="s3cret", fail_first=3)
    served = ReceiverThread(receiver)
    spool = Spool(tmp_path / "spool.sqlite3")
    events = [passage() for _ in range(4)]
    spool.add("webhook-1", items(events), limit=100)
    sink = WebhookSink("webhook-1", f"http://127.0.0.1:{served.port}/hook", "s3cret")
    dispatcher = Dispatcher(sink, spool, max_pause=0.5)
    try:
        dispatcher.start()
        wait(lambda: len(receiver.uids) == 4, 20, "four deliveries")
        assert receiver.uids == [e.uid for e in events]  # in order, each once
        assert receiver.attempts == 7 and dispatcher.delivered == 4 and dispatcher.failures == 0
        wait(lambda: spool.depth("webhook-1") == 0, 5, "the spool to empty")
        # A sender with the wrong secret is refused by the receiver's check and retried, never accepted.
        wrong = WebhookSink("webhook-2", f"http://127.0.0.1:{served.port}/hook", "wrong")
        with pytest.raises(Exception, match="HTTP 401"):
            wrong.deliver(passage())
        assert receiver.refused_signatures == 1 and len(receiver.uids) == 4
    finally:
        dispatcher.stop()
        served.stop()
        spool.close()


def test_mqtt_sink_announces_retains_and_delivers_across_a_broker_restart(
    broker: Broker, tmp_path: Path
) -> None:
    topics = Topics("maskcam", "homeassistant")
    listener = Subscriber(broker, ("maskcam/#", "homeassistant/#")).start()
    target = parse_mqtt_url(broker.url)
    assert target is not None
    sink = MqttSink(target, topics)
    spool = Spool(tmp_path / "spool.sqlite3")
    dispatcher = Dispatcher(sink, spool, max_pause=1.0)
    try:
        sink.start()
        dispatcher.start()
        wait(lambda: sink.connected, 10, "the sink to connect")
        sink.add_location("Gate 1")
        sink.show(LiveState.of("Gate 1", ["without_mask"]))
        sink.show(TodayCounts("Gate 1", "2026-12-07", {"people": 1, "without_mask": 1, "compliance": 0.0}))
        before = [passage() for _ in range(3)]
        spool.add("mqtt", items(before), limit=100)
        dispatcher.wake()
        listener.wait_for(lambda: len(listener.on("maskcam/passages")) == 3, 10, "three passages")
        kept = retained(broker, "#")
        assert kept["maskcam/status"] == b"online"
        assert json.loads(kept["maskcam/gate_1/state"])["verdict"] == "unmasked"
        assert json.loads(kept["maskcam/gate_1/today"])["people"] == 1
        assert len([t for t in kept if t.startswith("homeassistant/sensor/maskcam_gate_1/")]) == 7
        broker.stop()
        wait(lambda: not sink.connected, 10, "the sink to notice")
        during = [passage() for _ in range(3)]
        spool.add("mqtt", items(during), limit=100)
        dispatcher.wake()
        time.sleep(1.0)
        assert spool.depth("mqtt") == 3  # nothing acknowledged: all still spooled
        broker.start()
        listener.wait_for(lambda: len(listener.on("maskcam/passages")) >= 6, 20, "the spooled passages")
        uids = {m.json()["uid"] for m in listener.on("maskcam/passages")}
        assert uids == {e.uid for e in before + during}
        wait(lambda: spool.depth("mqtt") == 0, 5, "the spool to empty")
        # Home Assistant restarting: the configs come again.
        configs_before = len([t for t in listener.messages if t.topic.startswith("homeassistant/sensor")])
        announce = Subscriber(broker, ())
        announce._client.connect("127.0.0.1", broker.port)
        announce._client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        announce._client.disconnect()
        listener.wait_for(
            lambda: len([t for t in listener.messages if t.topic.startswith("homeassistant/sensor")])
            >= configs_before + 7, 10, "the configs again")  # fmt: skip
    finally:
        dispatcher.stop()
        sink.stop()
        listener.stop()
        spool.close()
    assert retained(broker, "maskcam/status")["maskcam/status"] == b"offline"  # a clean stop says so


def test_beyond_events_queue_the_oldest_passages_of_a_sink_are_dropped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stored passages become spooled deliveries in the writer's spool transaction, at most
    --events-queue per sink (the receiver here never answers: nothing is delivered)."""
    settings = ServerConfig(
        history=str(tmp_path / "history.sqlite3"),
        webhook=(f"http://127.0.0.1:{free_port()}/hook",),
        events_queue=2,
    )
    metrics = ServerMetrics()
    events = EventService(settings, metrics, UTC)
    store = HistoryStore(str(tmp_path / "history.sqlite3"))
    store.open()
    spool = Spool(tmp_path / "spool.sqlite3")
    writer = HistoryWriter(store, WriterSettings(batch_wait=0.01), spool=spool, outlet=events)
    records = [to_record(Passage(time.time() + i, 1.0, "with_mask", 0.9, 5, "large", False), "Gate 1")
               for i in range(5)]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="server.events.service"):
        writer.start()
        for item in records:
            assert writer.submit(item)
            assert writer.flush(10)
        writer.stop()
    kept = spool.take("webhook-1", 10)
    assert [PassageEvent.from_json(e.payload).uid for e in kept] == [r.uid for r in records[-2:]]
    assert 'maskcam_events_dropped_total{sink="webhook-1"} 3.0' in metrics.render().decode()
    assert any("oldest were dropped" in r.getMessage() for r in caplog.records)
    # What a sink receives is /api/passages' row and its start time, nothing more.
    body = json.loads(kept[0].payload)
    assert set(body) == {*CSV_FIELDS, "start_ms"} and "box" not in body
    spool.close()


def test_the_receivers_check_in_the_docs_accepts_our_signature_and_refuses_a_wrong_one() -> None:
    """docs/API.md's Python check for webhook receivers, run as written."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "API.md").read_text(encoding="utf-8")
    section = docs.split("### Webhooks", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/API.md", "exec"), namespace)
    genuine = namespace["genuine"]
    body = b'{"uid":"abc"}'
    headers = signed_headers("s3cret", body)
    assert genuine(b"s3cret", headers, body)  # type: ignore[operator]
    assert not genuine(b"wrong", headers, body)  # type: ignore[operator]
    assert not genuine(b"s3cret", signed_headers("s3cret", body, now=time.time() - 600), body)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("history", "detail", "per_person"),
    [("h.sqlite3", "passages", True), ("h.sqlite3", "counts", False), (None, "passages", False)],
)
def test_what_is_sent_follows_the_historys_detail(
    tmp_path: Path, history: str | None, detail: str, per_person: bool
) -> None:
    """Counts mode: no message per person; no history: no passage and no today's counts at all."""
    settings = ServerConfig(
        history=str(tmp_path / history) if history else None,
        history_detail=detail,
        webhook=("http://127.0.0.1:9/hook",),
        mqtt=parse_mqtt_url("mqtt://127.0.0.1:9"),
    )
    events = EventService(settings, ServerMetrics(), UTC)
    record = to_record(Passage(time.time(), 1.0, "with_mask", 0.9, 5, "large", False), "Gate 1")
    forwarded = events.forward([record])
    assert (set(forwarded) == {"mqtt", "webhook-1"}) is per_person and (forwarded == {}) is not per_person
    mqtt_sink = events.sinks[0]
    assert isinstance(mqtt_sink, MqttSink)
    configs = discovery_configs(mqtt_sink.topics, "Gate 1", mqtt_sink.include_today)
    assert len(configs) == (7 if history else 2)
