"""The library's relevance checks: what Apple Wallet takes in `locations` and `beacons`, and nothing more."""

import math

import pytest

from passes.relevance import Beacon, Location, beacons_json, check_counts, locations_json

UUID = "E2C56DB5-DFFB-48D2-B060-D0F5A71096E0"


@pytest.mark.parametrize("latitude, longitude", [(90.0001, 0), (-91, 0), (0, 180.0001), (0, -181), (math.nan, 0),
                                                 (0, math.inf), (True, 0), ("35", 0)])
def test_coordinates_outside_the_globe_are_refused(latitude, longitude):
    with pytest.raises(ValueError):
        Location(latitude, longitude)


def test_the_poles_and_the_date_line_are_places():
    assert locations_json((Location(90, 180), Location(-90, -180, "Hi"))) == [
        {"latitude": 90.0, "longitude": 180.0}, {"latitude": -90.0, "longitude": -180.0, "relevantText": "Hi"}]


@pytest.mark.parametrize("uuid", ["", UUID.replace("-", ""), UUID + "0", "G" + UUID[1:]])
def test_a_proximity_uuid_must_be_a_uuid(uuid):
    with pytest.raises(ValueError, match="proximity_uuid"):
        Beacon(uuid)


def test_beacon_numbers_are_16_bit_and_a_minor_needs_a_major():
    assert beacons_json((Beacon(UUID.lower(), 0, 65535),)) == [{"proximityUUID": UUID, "major": 0, "minor": 65535}]
    for bad in (dict(major=65536), dict(major=-1), dict(minor=1)):
        with pytest.raises(ValueError):
            Beacon(UUID, **bad)


def test_ten_of_each_fit_and_eleven_do_not():
    ten = tuple(Location(0, n) for n in range(10))
    check_counts(ten, tuple(Beacon(UUID, n) for n in range(10)))
    with pytest.raises(ValueError, match="at most 10 locations"):
        check_counts(ten + (Location(1, 1),), ())
    with pytest.raises(ValueError, match="at most 10 beacons"):
        check_counts((), tuple(Beacon(UUID, n) for n in range(11)))
