"""The Mosquitto ACL export (ADR 0014), on paper: the ACL text and password file written for
the service and each device, the devices left out (and why), and the password hashes being
what Mosquitto itself writes. A real Mosquitto enforcing them: test_acl_broker.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.channels.push import TOPIC as PUSH_TOPIC
from store.secrets import check_device_password, hash_device_password
from telematics import acl
from telematics.acl import (
    DeviceEntry,
    MqttAccount,
    acl_text,
    device_account,
    mosquitto_hash,
    password_file_text,
    plan_accounts,
    service_account,
)
from telematics.mqtt import TOPICS
from tests.conftest import require_servers

pytestmark = pytest.mark.security

HASH = hash_device_password("x", salt=b"0123456789ab")


def _device(
    vehicle: str = "van-a",
    protocol: str = "fleet",
    *,
    username: str = "dev-a",
    external: str | None = None,
    organisation: str = "org1",
    device_id: str = "d-a",
) -> DeviceEntry:
    return DeviceEntry(device_id, organisation, vehicle, username, HASH, protocol, external)


def _service() -> MqttAccount:
    return service_account("lastmile", HASH)


# --- the ACL text -------------------------------------------------------------------------


def test_acl_text_grants_each_account_only_its_own_topics() -> None:
    """The whole file for a service and one device of each protocol, line by line."""
    devices = [
        _device(),
        _device("van-b", "owntracks", username="dev-b", external="anna/phone", device_id="d-b"),
        _device("van-c", "osmand", username="dev-c", external="4711", device_id="d-c"),
    ]
    accounts, skipped = plan_accounts(_service(), devices)
    assert skipped == []
    assert acl_text(accounts, "generated") == (
        "# generated\n"
        "\n"
        "# the service: ingests device topics, publishes routes and customer pushes\n"
        "user lastmile\n"
        "topic read +/fleet/+/position\n"
        "topic read +/fleet/+/gpsd\n"
        "topic read +/fleet/+/events\n"
        "topic read fleet/+/position\n"
        "topic read fleet/+/gpsd\n"
        "topic read fleet/+/events\n"
        "topic read owntracks/+/+\n"
        "topic write +/fleet/+/route\n"
        "topic write customers/+/updates\n"
        "\n"
        "# device d-a: vehicle van-a, fleet\n"
        "user dev-a\n"
        "topic read org1/fleet/van-a/route\n"
        "topic write org1/fleet/van-a/position\n"
        "topic write org1/fleet/van-a/gpsd\n"
        "topic write org1/fleet/van-a/events\n"
        "topic write fleet/van-a/position\n"
        "topic write fleet/van-a/gpsd\n"
        "topic write fleet/van-a/events\n"
        "\n"
        "# device d-b: vehicle van-b, owntracks\n"
        "user dev-b\n"
        "topic read org1/fleet/van-b/route\n"
        "topic write owntracks/anna/phone\n"
        "\n"
        "# device d-c: vehicle van-c, osmand\n"
        "user dev-c\n"
        "topic read org1/fleet/van-c/route\n"
    )
    assert password_file_text(accounts) == "".join(
        f"{name}:{HASH}\n" for name in ("lastmile", "dev-a", "dev-b", "dev-c")
    )


def test_service_topics_follow_the_ingester_and_the_push_channel() -> None:
    """The service reads exactly what the ingester subscribes to and writes the push topic, so
    a topic added there cannot be silently missing from the ACL."""
    service = _service()
    assert service.read == TOPICS
    assert PUSH_TOPIC.format(token="+") in service.write


@pytest.mark.parametrize(
    "vehicle", ["+", "#", "van/a", "van+", "a#", "", " van", "van ", "van\n1", "van\x00", "v\x7f"]
)
def test_vehicle_ids_that_would_widen_a_grant_are_left_out(vehicle: str) -> None:
    """A vehicle named ``+`` would be granted every vehicle's topics, ``a/b`` another level,
    a newline a line of its own choosing: such a device is left out, saying why."""
    accounts, skipped = plan_accounts(_service(), [_device(vehicle)])
    assert [a.username for a in accounts] == ["lastmile"]
    assert [s.username for s in skipped] == ["dev-a"]
    assert "vehicle id" in skipped[0].reason
    assert "dev-a" not in acl_text(accounts)


@pytest.mark.parametrize("external", ["anna", "anna/+", "+/phone", "anna/phone/x", "anna/#", "/"])
def test_owntracks_ids_that_are_not_user_and_device_are_left_out(external: str) -> None:
    accounts, skipped = plan_accounts(
        _service(), [_device(protocol="owntracks", external=external)]
    )
    assert len(accounts) == 1
    assert len(skipped) == 1


@given(st.text(max_size=12))
def test_no_vehicle_id_yields_a_wildcard_or_extra_level(vehicle: str) -> None:
    """Whatever the vehicle is called, a device's grants are literal topics: four levels
    under its organisation, three for the deprecated ones."""
    try:
        account = device_account(_device(vehicle), legacy=True)
    except acl.AclError:
        return
    for topic in (*account.read, *account.write):
        parts = topic.split("/")
        assert (len(parts) == 4 and parts[:2] == ["org1", "fleet"]) or len(parts) == 3
        assert not set(topic) & set("+#\n\r\x00")


def test_vehicle_ids_shared_by_organisations_get_only_their_organisations_topics() -> None:
    """Two tenants' "van-1" devices each get their own organisation's van-1 topics; the
    deprecated un-prefixed ones would name both, so neither gets them (the ingester refuses
    such a vehicle's un-prefixed fixes as ambiguous too)."""
    devices = [
        _device("van-1", organisation="org1", username="dev-1", device_id="d-1"),
        _device("van-1", organisation="org2", username="dev-2", device_id="d-2"),
        _device("van-2", organisation="org1", username="dev-3", device_id="d-3"),
    ]
    accounts, skipped = plan_accounts(_service(), devices, ambiguous_vehicles={"van-1"})
    assert skipped == []
    by_user = {a.username: a for a in accounts}
    assert by_user["dev-1"].read == ("org1/fleet/van-1/route",)
    assert by_user["dev-2"].read == ("org2/fleet/van-1/route",)
    assert not any(t.startswith("fleet/") for t in by_user["dev-1"].write + by_user["dev-2"].write)
    assert "fleet/van-2/position" in by_user["dev-3"].write


def test_two_devices_of_one_vehicle_share_its_topics() -> None:
    devices = [_device(), _device(username="dev-a2", device_id="d-a2")]
    accounts, skipped = plan_accounts(_service(), devices)
    assert skipped == []
    assert accounts[1].write == accounts[2].write


def test_an_owntracks_topic_claimed_by_two_vehicles_is_left_out() -> None:
    devices = [
        _device("van-a", "owntracks", username="dev-a", external="anna/phone"),
        _device("van-b", "owntracks", username="dev-b", external="anna/phone", device_id="d-b"),
    ]
    accounts, skipped = plan_accounts(_service(), devices)
    assert len(accounts) == 1
    assert {s.device_id for s in skipped} == {"d-a", "d-b"}


def test_a_device_named_like_the_service_is_left_out() -> None:
    accounts, skipped = plan_accounts(_service(), [_device(username="lastmile")])
    assert [a.username for a in accounts] == ["lastmile"]
    assert accounts[0].read == TOPICS
    assert "taken" in skipped[0].reason


@pytest.mark.parametrize("stored", ["plain", "$7$101$abc$de:f", "$7$101$abc\n$def", ""])
def test_a_password_hash_not_in_mosquitto_format_is_left_out(stored: str) -> None:
    """Only a Mosquitto hash reaches the password file (no second line smuggled in)."""
    device = DeviceEntry("d-a", "org1", "van-a", "dev-a", stored, "fleet", None)
    accounts, skipped = plan_accounts(_service(), [device])
    assert len(accounts) == 1
    assert "format" in skipped[0].reason


@pytest.mark.parametrize("username", ["a:b", "a b", "a\nuser root", ""])
def test_unsafe_usernames_are_refused(username: str) -> None:
    with pytest.raises(acl.AclError):
        service_account(username, HASH)
    assert plan_accounts(_service(), [_device(username=username)])[1]


# --- hashes -------------------------------------------------------------------------------


def _mosquitto_passwd() -> str | None:
    found = shutil.which("mosquitto_passwd")
    if found is None and require_servers():
        pytest.fail("mosquitto_passwd not installed")
    return found


def test_stored_device_hashes_are_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    """The store's device hashes go into the password file unchanged: the binary's own hash
    checks with the store's code, and has the same shape (algorithm, iterations, salt and
    digest lengths) as the store's. That the broker accepts the store's hashes is proven by
    the connections in test_acl_broker.py."""
    binary = _mosquitto_passwd()
    if binary is None:
        pytest.skip("mosquitto_passwd not installed: cannot compare with it")
    target = tmp_path / "passwd"
    subprocess.run(
        [binary, "-c", str(target), "svc"],
        input="s3cret pass\ns3cret pass\n",
        text=True,
        capture_output=True,
        timeout=30,
        check=True,
    )
    theirs = target.read_text().strip().partition(":")[2]
    assert check_device_password("s3cret pass", theirs)
    assert not check_device_password("s3cret pasS", theirs)
    ours = hash_device_password("s3cret pass")
    shape = [(p if i < 3 else len(p)) for i, p in enumerate(ours.split("$"))]
    assert shape == [(p if i < 3 else len(p)) for i, p in enumerate(theirs.split("$"))]
    assert check_device_password("s3cret pass", mosquitto_hash("svc", "s3cret pass"))


def test_without_the_binary_the_hash_is_mosquittos_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acl, "mosquitto_passwd_binary", lambda: None)
    hashed = mosquitto_hash("svc", "pw")
    assert hashed.startswith("$7$101$")
    assert check_device_password("pw", hashed)
