"""Validation of hosts, bridges and containers: good input passes, bad input says what to do."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from provisioning.models import Container, NetworkBridge, ProxmoxHost
from provisioning.validators import validate_hostname, validate_vmid

pytestmark = pytest.mark.django_db


@pytest.fixture
def host():
    return ProxmoxHost.objects.create(
        name="ax42", api_url="https://127.0.0.1:8006", node="ax42",
        cpu_cores=8, cpu_threads=16, memory_mb=65536, storage_gb=1024,
    )


@pytest.fixture
def bridge(host):
    return NetworkBridge.objects.create(host=host, name="vmbr1", subnet="10.0.100.0/24", gateway="10.0.100.1")


def make_container(host, bridge, **overrides):
    values = {
        "host": host, "vmid": 201, "hostname": "lilly", "bridge": bridge, "ip_address": "10.0.100.201",
        "prefix_length": 24, "gateway": "10.0.100.1", "cores": 2, "memory_mb": 4096, "swap_mb": 0,
        "rootfs_gb": 40, "storage": "local-lvm", "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    }
    values.update(overrides)
    return Container(**values)


def errors_of(instance) -> dict:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


# --- vmid -----------------------------------------------------------------------------------

@pytest.mark.parametrize("vmid", [100, 201, 999_999_999])
def test_vmid_in_proxmox_range_is_accepted(vmid):
    validate_vmid(vmid)


@pytest.mark.parametrize("vmid", [0, 99, 1_000_000_000])
def test_vmid_out_of_range_names_the_range(vmid):
    with pytest.raises(ValidationError, match="run from 100 to 999999999"):
        validate_vmid(vmid)


def test_database_refuses_a_vmid_out_of_range(host, bridge):
    container = make_container(host, bridge, vmid=42)
    with pytest.raises(IntegrityError), transaction.atomic():
        container.save()


def test_duplicate_vmid_on_a_host_names_the_container_holding_it(host, bridge):
    make_container(host, bridge).save()
    clash = make_container(host, bridge, hostname="web-test", ip_address="10.0.100.50")
    assert "vmid 201 is taken by 'lilly' on ax42." in errors_of(clash)["vmid"]
    with pytest.raises(IntegrityError), transaction.atomic():
        clash.save()


def test_same_vmid_on_another_host_is_fine(host, bridge):
    make_container(host, bridge).save()
    other = ProxmoxHost.objects.create(
        name="ax43", api_url="https://127.0.0.1:8007", node="ax43",
        cpu_cores=8, cpu_threads=16, memory_mb=65536, storage_gb=1024,
    )
    other_bridge = NetworkBridge.objects.create(host=other, name="vmbr1", subnet="10.0.100.0/24")
    make_container(other, other_bridge).full_clean()


# --- hostname (RFC 1123) --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lilly", "mach42v2", "ct-201", "a", "lilly.meetmike.pro", "x" * 63])
def test_rfc1123_hostnames_are_accepted(name):
    validate_hostname(name)


@pytest.mark.parametrize(
    "name", ["-lilly", "lilly-", "lil_ly", "lil ly", "lilly..pro", "x" * 64, "", "a" * 254, "lílly"]
)
def test_bad_hostnames_are_refused_with_the_rule(name):
    with pytest.raises(ValidationError) as caught:
        validate_hostname(name)
    assert "RFC 1123" in caught.value.messages[0] or "1 to 253" in caught.value.messages[0]


# --- addresses ------------------------------------------------------------------------------

def test_address_inside_the_bridge_subnet_is_accepted(host, bridge):
    make_container(host, bridge).full_clean()


def test_address_outside_the_bridge_subnet_names_the_subnet(host, bridge):
    errors = errors_of(make_container(host, bridge, ip_address="10.0.101.5"))
    assert errors["ip_address"] == [
        "10.0.101.5 is outside vmbr1's subnet 10.0.100.0/24: pick an address in 10.0.100.0/24."
    ]


@pytest.mark.parametrize("address", ["10.0.100.0", "10.0.100.255"])
def test_network_and_broadcast_addresses_are_refused(host, bridge, address):
    assert "network or broadcast" in errors_of(make_container(host, bridge, ip_address=address))["ip_address"][0]


def test_prefix_must_match_the_bridge(host, bridge):
    errors = errors_of(make_container(host, bridge, prefix_length=16))
    assert errors["prefix_length"] == ["Prefix /16 does not match vmbr1's subnet 10.0.100.0/24: use /24."]


def test_missing_prefix_is_taken_from_the_bridge(host, bridge):
    container = make_container(host, bridge, prefix_length=None)
    container.full_clean()
    assert container.ipv4_cidr == "10.0.100.201/24"


def test_gateway_outside_the_subnet_is_refused(host, bridge):
    assert "outside vmbr1's subnet" in errors_of(make_container(host, bridge, gateway="192.168.1.1"))["gateway"][0]


def test_address_without_a_bridge_asks_for_one(host, bridge):
    assert "needs a bridge" in errors_of(make_container(host, None))["bridge"][0]


def test_address_is_unique_per_host(host, bridge):
    make_container(host, bridge).save()
    clash = make_container(host, bridge, vmid=202, hostname="mike")
    assert errors_of(clash)["ip_address"][0].startswith("10.0.100.201 is already used by CT201 lilly")
    with pytest.raises(IntegrityError), transaction.atomic():
        clash.save()


def test_bridge_of_another_host_is_refused(host, bridge):
    other = ProxmoxHost.objects.create(
        name="ax43", api_url="https://127.0.0.1:8007", node="ax43",
        cpu_cores=8, cpu_threads=16, memory_mb=65536, storage_gb=1024,
    )
    other_bridge = NetworkBridge.objects.create(host=other, name="vmbr9", subnet="10.0.100.0/24")
    assert "belongs to another host" in errors_of(make_container(host, other_bridge))["bridge"][0]


@pytest.mark.parametrize("subnet", ["10.0.100.1/24", "not-a-subnet", "10.0.100.0/33"])
def test_bridge_subnet_must_be_a_network_in_cidr_form(host, subnet):
    errors = errors_of(NetworkBridge(host=host, name="vmbr2", subnet=subnet))
    assert "CIDR form" in errors["subnet"][0]


def test_bridge_gateway_must_be_inside_its_subnet(host):
    errors = errors_of(NetworkBridge(host=host, name="vmbr2", subnet="10.0.100.0/24", gateway="10.9.9.1"))
    assert "outside the subnet" in errors["gateway"][0]


# --- resources ------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["cores", "memory_mb", "rootfs_gb"])
def test_resources_must_be_positive(host, bridge, field):
    errors = errors_of(make_container(host, bridge, **{field: 0}))
    assert field in errors


@pytest.mark.parametrize("field", ["cores", "memory_mb"])
def test_database_refuses_zero_resources(host, bridge, field):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_container(host, bridge, **{field: 0}).save()


def test_unknown_rootfs_is_allowed_for_pre_existing_containers(host):
    Container(host=host, vmid=100, hostname="mach42v2", cores=6, memory_mb=24576, rootfs_gb=None,
              storage="", managed=False).full_clean()


def test_host_needs_at_least_one_thread_per_core():
    host = ProxmoxHost(name="bad", api_url="https://127.0.0.1:8006", node="n", cpu_cores=8, cpu_threads=4,
                       memory_mb=1, storage_gb=1)
    assert "at least 8 threads" in errors_of(host)["cpu_threads"][0]
    with pytest.raises(IntegrityError), transaction.atomic():
        host.save()


def test_host_token_id_must_look_like_a_proxmox_token():
    host = ProxmoxHost(name="h", api_url="https://127.0.0.1:8006", node="n", cpu_cores=1, cpu_threads=1,
                       memory_mb=1, storage_gb=1, token_id="root@pam")
    assert "user@realm!tokenname" in errors_of(host)["token_id"][0]
