"""MQTT topic names: the prefix's topics, the location slug, and Home Assistant's discovery configs.

The slug rule (docs/API.md states it too): the location name with its accents removed (NFKD), lower
case, every run of characters other than a-z and 0-9 turned into one `_`, without `_` at either end,
at most `MAX_SLUG` characters; a name of which nothing is left (no Latin letter or digit) becomes
`loc_` and the first 8 hex digits of its SHA-256. So "Entrée Nord (B)" is `entree_nord_b`. Topics never
hold `+`, `#` or `/` from a name, and the slug is also a valid Home Assistant object id.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass

MAX_SLUG = 48
DEFAULT_PREFIX = "maskcam"
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
ONLINE = "online"
OFFLINE = "offline"
VERDICTS = ("none", "masked", "unmasked", "incorrect")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def topic_slug(location: str) -> str:
    """The location's topic level (see the module's docstring)."""
    folded = unicodedata.normalize("NFKD", location).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("_", folded.lower()).strip("_")[:MAX_SLUG].strip("_")
    if not slug:
        slug = "loc_" + hashlib.sha256(location.encode("utf-8")).hexdigest()[:8]
    return slug


@dataclass(frozen=True)
class Topics:
    """The topics under one prefix, and where Home Assistant reads its discovery configs."""

    prefix: str = DEFAULT_PREFIX
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX

    @property
    def passages(self) -> str:
        return f"{self.prefix}/passages"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def discovery_status(self) -> str:
        """Home Assistant publishes `online` here when it starts: the configs are sent again then."""
        return f"{self.discovery_prefix}/status"

    def state(self, location: str) -> str:
        return f"{self.prefix}/{topic_slug(location)}/state"

    def today(self, location: str) -> str:
        return f"{self.prefix}/{topic_slug(location)}/today"


@dataclass(frozen=True)
class DiscoverySensor:
    """One Home Assistant sensor of a location's device, read from its `today` or `state` topic."""

    key: str
    name: str
    source: str
    """`today` or `state`: the topic it reads."""
    field: str
    unit: str | None = None
    state_class: str | None = "measurement"
    enum: bool = False


SENSORS = (
    DiscoverySensor("verdict", "Verdict", "state", "verdict", state_class=None, enum=True),
    DiscoverySensor("faces", "Faces", "state", "faces"),
    DiscoverySensor("compliance", "Compliance today", "today", "compliance", unit="%"),
    DiscoverySensor("people", "People today", "today", "people", state_class="total"),
    DiscoverySensor("masked", "Masked today", "today", "with_mask", state_class="total"),
    DiscoverySensor("unmasked", "Unmasked today", "today", "without_mask", state_class="total"),
    DiscoverySensor(
        "incorrect", "Mask worn incorrectly today", "today", "mask_worn_incorrectly", state_class="total"
    ),
)
"""What Home Assistant shows of a location: the live verdict and faces, and today's counts."""


def _template(sensor: DiscoverySensor) -> str:
    """Home Assistant's template for the sensor's value; the compliance share (0-1, null with nobody yet)
    as a percentage, `None` (Home Assistant's "unknown") with nobody."""
    if sensor.key == "compliance":
        return "{{ (value_json.compliance * 100) | round(1) if value_json.compliance is not none else None }}"
    return f"{{{{ value_json.{sensor.field} }}}}"


def discovery_configs(topics: Topics, location: str, include_today: bool = True) -> list[tuple[str, str]]:
    """(topic, JSON) of the retained discovery config of each sensor of `location`'s device; without a
    history there is no `today`, so only the live sensors."""
    slug = topic_slug(location)
    device = {
        "identifiers": [f"maskcam_{slug}"],
        "name": f"Mask check {location}",
        "manufacturer": "maskcam",
        "model": "Face-mask detector",
    }
    configs = []
    for sensor in SENSORS:
        if sensor.source == "today" and not include_today:
            continue
        source = topics.today(location) if sensor.source == "today" else topics.state(location)
        config: dict[str, object] = {
            "name": sensor.name,
            "unique_id": f"maskcam_{slug}_{sensor.key}",
            "object_id": f"maskcam_{slug}_{sensor.key}",
            "state_topic": source,
            "value_template": _template(sensor),
            "availability_topic": topics.status,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device,
        }
        if sensor.unit is not None:
            config["unit_of_measurement"] = sensor.unit
        if sensor.state_class is not None:
            config["state_class"] = sensor.state_class
        if sensor.enum:
            config["device_class"] = "enum"
            config["options"] = list(VERDICTS)
        topic = f"{topics.discovery_prefix}/sensor/maskcam_{slug}/{sensor.key}/config"
        configs.append((topic, json.dumps(config, separators=(",", ":"))))
    return configs
