"""Capacity of a host: allocated against capacity, with unknown disks shown as unknown."""

import pytest

from provisioning.models import Container, ProxmoxHost
from provisioning.selectors import host_capacity, host_list_with_allocation

pytestmark = pytest.mark.django_db


def test_capacity_of_the_loaded_plan(max_plan):
    capacity = host_capacity(host=ProxmoxHost.objects.get(name="ax42"))
    assert capacity.containers == 8
    assert (capacity.cores_allocated, capacity.threads) == (20, 16)
    assert capacity.cpu_time_shared and capacity.cpu_fits, "20 vCPUs on 16 threads is time-shared, within 2x"
    assert (capacity.memory_allocated_mb, capacity.memory_mb) == (52 * 1024, 64 * 1024)
    assert capacity.disk_allocated_gb == 280
    assert capacity.disk_unknown == ["CT100"]
    assert capacity.fits
    assert capacity.summary() == [
        "20 cores allocated on 16 threads (time-shared, 1.25x; limit 2x)",
        "52 of 64 GB memory",
        "280 of 1024 GB disk (+ unknown for CT100)",
        "the plan fits",
    ]


def test_plan_stops_fitting_when_memory_is_overcommitted(max_plan):
    Container.objects.filter(vmid=207).update(memory_mb=20 * 1024)
    capacity = host_capacity(host=ProxmoxHost.objects.get())
    assert capacity.memory_allocated_mb == 68 * 1024
    assert not capacity.memory_fits and not capacity.fits


def test_cpu_overcommit_limit_is_a_setting(max_plan, settings):
    settings.MAXPORTAL_CPU_OVERCOMMIT_RATIO = 1.0
    capacity = host_capacity(host=ProxmoxHost.objects.get())
    assert not capacity.cpu_fits and not capacity.fits


def test_capacity_is_two_queries(max_plan, django_assert_num_queries):
    host = ProxmoxHost.objects.get()
    with django_assert_num_queries(2):
        host_capacity(host=host)


def test_host_list_annotates_allocation(max_plan):
    host = host_list_with_allocation().get()
    assert (host.container_count, host.cores_allocated, host.memory_allocated_mb) == (8, 20, 53248)
    assert (host.disk_allocated_gb, host.disk_unknown_count) == (280, 1)
