"""Where a card surfaces on the lock screen: Apple's `locations` and `beacons` in pass.json, each with the text
shown beside it. Plain values in, dicts out; no app, no database."""

import math
import re
from dataclasses import dataclass

MAX_LOCATIONS = 10  # Apple: Wallet reads at most 10 locations (Google's merchantLocations: 10 too)
MAX_BEACONS = 10  # Apple: at most 10 beacons
MAX_RELEVANT_TEXT = 120  # shown on the lock screen: keep it to a line
MAX_BEACON_NUMBER = 65535  # iBeacon major and minor are 16-bit
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


@dataclass(frozen=True)
class Location:
    """A shop: the card surfaces near it (Wallet's radius for store cards is about 100 m)."""

    latitude: float
    longitude: float
    relevant_text: str | None = None

    def __post_init__(self) -> None:
        check_coordinate("latitude", self.latitude, 90)
        check_coordinate("longitude", self.longitude, 180)
        _check_text(self.relevant_text)


@dataclass(frozen=True)
class Beacon:
    """An iBeacon in the shop; without major (or minor) any beacon with the UUID (and major) matches."""

    proximity_uuid: str
    major: int | None = None
    minor: int | None = None
    relevant_text: str | None = None

    def __post_init__(self) -> None:
        check_proximity_uuid(self.proximity_uuid)
        for name in ("major", "minor"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not 0 <= value <= MAX_BEACON_NUMBER):
                raise ValueError(f"{name} must be a whole number from 0 to {MAX_BEACON_NUMBER}")
        if self.minor is not None and self.major is None:
            raise ValueError("minor needs a major")
        _check_text(self.relevant_text)


def check_coordinate(name: str, value: float, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not -limit <= value <= limit:
        raise ValueError(f"{name} must be a number from -{limit} to {limit}")


def check_proximity_uuid(value: str) -> None:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise ValueError("proximity_uuid must be a UUID like E2C56DB5-DFFB-48D2-B060-D0F5A71096E0")


def _check_text(text: str | None) -> None:
    if text is not None and not 1 <= len(text) <= MAX_RELEVANT_TEXT:
        raise ValueError(f"relevant_text must be 1 to {MAX_RELEVANT_TEXT} characters")


def check_counts(locations: tuple, beacons: tuple) -> None:
    if len(locations) > MAX_LOCATIONS:
        raise ValueError(f"at most {MAX_LOCATIONS} locations, got {len(locations)}")
    if len(beacons) > MAX_BEACONS:
        raise ValueError(f"at most {MAX_BEACONS} beacons, got {len(beacons)}")


def locations_json(locations: tuple[Location, ...]) -> list[dict]:
    return [_without_none({"latitude": float(place.latitude), "longitude": float(place.longitude),
                           "relevantText": place.relevant_text}) for place in locations]


def beacons_json(beacons: tuple[Beacon, ...]) -> list[dict]:
    """Apple spells the UUID in upper case in its examples; the device compares case-insensitively."""
    return [_without_none({"proximityUUID": beacon.proximity_uuid.upper(), "major": beacon.major,
                           "minor": beacon.minor, "relevantText": beacon.relevant_text}) for beacon in beacons]


def _without_none(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if value is not None}
