"""Proxmox hosts, their bridges, and the LXC containers the Eidolons live in.

Invariants kept by the database: a vmid is unique per host, an IPv4 address is unique per host,
vmids are in Proxmox's range and resources are positive. ``clean()`` checks what needs more than
one row to see (the address inside its bridge's subnet) and says how to fix it.
"""

import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from .choices import (
    ContainerStatusChoices,
    DriftKindChoices,
    ExecutorChoices,
    RootChannelChoices,
    StepChoices,
    StepRunStateChoices,
    StepStateChoices,
)
from .validators import VMID_MAX, VMID_MIN, validate_hostname, validate_vmid


class ProxmoxHost(models.Model):
    """A Proxmox VE node the portal provisions containers on (the Hetzner AX42 in the plan).

    The API token's secret is never stored in the database: it is read at call time from the
    environment variable or the file named here.
    """

    name = models.CharField(max_length=50, unique=True, help_text="Short name, e.g. ax42.")
    api_url = models.URLField(
        help_text="Base URL of the Proxmox API, e.g. https://127.0.0.1:8006 (no /api2/json suffix)."
    )
    node = models.CharField(max_length=50, help_text="Proxmox node name the containers live on.")
    token_id = models.CharField(
        max_length=120,
        blank=True,
        help_text="API token id in Proxmox's form user@realm!tokenname, e.g. root@pam!maxportal.",
    )
    token_secret_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the token secret.",
    )
    token_secret_file = models.CharField(
        max_length=255,
        blank=True,
        help_text="Path of a file holding the token secret (used when the variable is not set).",
    )
    verify_tls = models.BooleanField(default=True, help_text="Verify the API's TLS certificate.")
    ca_file = models.CharField(
        max_length=255, blank=True, help_text="CA bundle to verify the API's certificate with (empty: system CAs)."
    )
    root_channel = models.CharField(
        max_length=10,
        choices=RootChannelChoices.choices,
        default=RootChannelChoices.NONE,
        help_text="How the portal acts as root@pam for keyctl=1 and bind mounts, which Proxmox refuses to tokens.",
    )
    root_password_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable holding root@pam's password (ticket channel)."
    )
    executor = models.CharField(
        max_length=10,
        choices=ExecutorChoices.choices,
        default=ExecutorChoices.SSH,
        help_text="Where in-container scripts run: over SSH on the node with pct exec, or simulated.",
    )
    ssh_host = models.CharField(max_length=255, blank=True, help_text="SSH address of the node (pct exec runs there).")
    ssh_port = models.PositiveIntegerField(default=22)
    ssh_user = models.CharField(max_length=50, default="root", blank=True)
    ssh_key_file = models.CharField(max_length=255, blank=True, help_text="Private key file for SSH to the node.")
    ssh_known_hosts_file = models.CharField(
        max_length=255, blank=True, help_text="known_hosts file pinning the node's host key."
    )
    cpu_model = models.CharField(max_length=100, blank=True)
    cpu_cores = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="Physical cores.")
    cpu_threads = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="Hardware threads.")
    memory_mb = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="RAM in MiB.")
    storage_gb = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Disk available to containers, in GB."
    )
    disks = models.CharField(max_length=100, blank=True, help_text="The physical disks, e.g. 2 x 512 GB NVMe.")

    class Meta:
        ordering = ["name"]
        verbose_name = "Proxmox host"
        constraints = [
            models.CheckConstraint(condition=Q(cpu_threads__gte=models.F("cpu_cores")), name="host_threads_gte_cores"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if self.cpu_cores and self.cpu_threads and self.cpu_threads < self.cpu_cores:
            raise ValidationError(
                {"cpu_threads": f"A host has at least one thread per core: {self.cpu_cores} cores need "
                                f"at least {self.cpu_cores} threads."}
            )
        if self.token_id and "!" not in self.token_id:
            raise ValidationError(
                {"token_id": "An API token id looks like user@realm!tokenname, e.g. root@pam!maxportal."}
            )


class NetworkBridge(models.Model):
    """A Linux bridge on a host (vmbr1 is the internal 10.0.100.0/24 NAT network)."""

    host = models.ForeignKey(ProxmoxHost, on_delete=models.CASCADE, related_name="bridges")
    name = models.CharField(max_length=20, help_text="Bridge name, e.g. vmbr1.")
    subnet = models.CharField(max_length=43, help_text="The bridge's IPv4 subnet in CIDR form, e.g. 10.0.100.0/24.")
    gateway = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="bridge_unique_name_per_host")]

    def __str__(self):
        return f"{self.name} ({self.subnet})"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet, strict=True)

    def clean(self):
        try:
            network = ipaddress.IPv4Network(self.subnet, strict=True)
        except ValueError as exc:
            raise ValidationError(
                {"subnet": f"'{self.subnet}' is not an IPv4 subnet in CIDR form ({exc}); example: 10.0.100.0/24."}
            ) from None
        if self.gateway and ipaddress.IPv4Address(self.gateway) not in network:
            raise ValidationError({"gateway": f"Gateway {self.gateway} is outside the subnet {self.subnet}."})


class Container(models.Model):
    """An LXC container on a Proxmox host: the home of one Eidolon (CT201-CT207, CT100).

    ``managed`` containers are created and configured by the portal; pre-existing ones (CT100,
    Mach42v2) are only recorded and watched.
    """

    host = models.ForeignKey(ProxmoxHost, on_delete=models.PROTECT, related_name="containers")
    vmid = models.PositiveIntegerField(validators=[validate_vmid], help_text="Proxmox CT id, e.g. 201.")
    hostname = models.CharField(max_length=253, validators=[validate_hostname])
    bridge = models.ForeignKey(
        NetworkBridge, on_delete=models.PROTECT, null=True, blank=True, related_name="containers"
    )
    ip_address = models.GenericIPAddressField(
        protocol="IPv4", null=True, blank=True, help_text="Static IPv4 address on the bridge."
    )
    prefix_length = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Network prefix of the address, e.g. 24."
    )
    gateway = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    cores = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    memory_mb = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="RAM in MiB.")
    swap_mb = models.PositiveIntegerField(default=0, help_text="Swap in MiB (the plan uses none).")
    rootfs_gb = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Root disk size in GB; empty when unknown (a pre-existing container).",
    )
    storage = models.CharField(
        max_length=50,
        default="local-lvm",
        blank=True,
        help_text="Proxmox storage for the root disk (empty when unknown).",
    )
    ostemplate = models.CharField(max_length=200, blank=True, help_text="OS template volume id.")
    feature_nesting = models.BooleanField(default=True, help_text="features: nesting=1")
    feature_keyctl = models.BooleanField(
        default=True, help_text="features: keyctl=1 (only root@pam may set it, never an API token)"
    )
    unprivileged = models.BooleanField(default=True)
    managed = models.BooleanField(
        default=True, help_text="Created and configured by the portal; off for pre-existing containers (CT100)."
    )
    status = models.CharField(
        max_length=20, choices=ContainerStatusChoices.choices, default=ContainerStatusChoices.PLANNED
    )
    last_synced_at = models.DateTimeField(
        null=True, blank=True, help_text="When the drift check last read this container from Proxmox."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["host__name", "vmid"]
        constraints = [
            models.UniqueConstraint(fields=["host", "vmid"], name="container_unique_vmid_per_host"),
            models.UniqueConstraint(fields=["host", "ip_address"], name="container_unique_ip_per_host"),
            models.CheckConstraint(
                condition=Q(vmid__gte=VMID_MIN) & Q(vmid__lte=VMID_MAX), name="container_vmid_range"
            ),
            models.CheckConstraint(
                condition=Q(cores__gte=1) & Q(memory_mb__gte=1), name="container_positive_resources"
            ),
            models.CheckConstraint(
                condition=Q(rootfs_gb__isnull=True) | Q(rootfs_gb__gte=1), name="container_positive_rootfs"
            ),
        ]

    def __str__(self):
        return f"CT{self.vmid} {self.hostname}"

    @property
    def ipv4_cidr(self) -> str:
        """The address with its prefix, as Proxmox's net0 wants it (10.0.100.201/24)."""
        if not self.ip_address:
            return ""
        return f"{self.ip_address}/{self.prefix_length}" if self.prefix_length else self.ip_address

    def clean(self):
        errors = {}
        if self.ip_address and not self.bridge_id:
            errors["bridge"] = "A static address needs a bridge: choose the bridge whose subnet holds it."
        if self.ip_address and self.bridge_id:
            network = self.bridge.network
            address = ipaddress.IPv4Address(self.ip_address)
            if address not in network:
                errors["ip_address"] = (
                    f"{self.ip_address} is outside {self.bridge.name}'s subnet {network}: "
                    f"pick an address in {network}."
                )
            elif address in (network.network_address, network.broadcast_address):
                errors["ip_address"] = f"{self.ip_address} is the network or broadcast address of {network}."
            if self.prefix_length is None:
                self.prefix_length = network.prefixlen
            elif self.prefix_length != network.prefixlen:
                errors["prefix_length"] = (
                    f"Prefix /{self.prefix_length} does not match {self.bridge.name}'s subnet {network}: "
                    f"use /{network.prefixlen}."
                )
            if self.gateway and ipaddress.IPv4Address(self.gateway) not in network:
                errors["gateway"] = f"Gateway {self.gateway} is outside {self.bridge.name}'s subnet {network}."
        if self.bridge_id and self.host_id and self.bridge.host_id != self.host_id:
            errors["bridge"] = f"Bridge {self.bridge.name} belongs to another host; pick one of this host's bridges."
        if self.ip_address and self.host_id:
            taken = (
                Container.objects.filter(host_id=self.host_id, ip_address=self.ip_address)
                .exclude(pk=self.pk)
                .first()
            )
            if taken:
                errors["ip_address"] = (
                    f"{self.ip_address} is already used by {taken} on this host: pick a free address."
                )
        if self.host_id and self.vmid:
            taken = Container.objects.filter(host_id=self.host_id, vmid=self.vmid).exclude(pk=self.pk).first()
            if taken:
                errors["vmid"] = f"vmid {self.vmid} is taken by '{taken.hostname}' on {self.host.name}."
        if errors:
            raise ValidationError(errors)


class ChecklistStep(models.Model):
    """One cell of the provisioning plan's checklist: a step (M365 Account ... Test Signal) of one
    container.

    The state moves only through ``provisioning.services`` along ``choices.STEP_TRANSITIONS``.
    """

    container = models.ForeignKey(Container, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=20, choices=StepChoices.choices)
    state = models.CharField(max_length=10, choices=StepStateChoices.choices, default=StepStateChoices.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times the step was run.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="Who ticked the step, or started the run that did it.",
    )
    actor_label = models.CharField(
        max_length=150, blank=True, help_text="Who or what made the last change, as shown on the page."
    )
    changed_at = models.DateTimeField(null=True, blank=True, help_text="When the state last changed.")
    output_tail = models.TextField(blank=True, help_text="The end of the last run's output or Proxmox task log.")
    upid = models.CharField(max_length=200, blank=True, help_text="Proxmox task id of the last run, if any.")
    note = models.TextField(blank=True, help_text="Free note, or why the step failed or is blocked.")

    class Meta:
        ordering = ["container__vmid", "step"]
        verbose_name = "checklist step"
        constraints = [
            models.UniqueConstraint(fields=["container", "step"], name="checkliststep_one_per_container"),
        ]

    def __str__(self):
        return f"CT{self.container.vmid} {self.get_step_display()}: {self.state}"


class StepRun(models.Model):
    """One attempt at an automated step, run by Celery tasks turn by turn.

    The database allows one running attempt per step (a partial unique index). ``turn``,
    ``lease_until`` and ``due_at`` make a re-delivered or lost task message harmless: only the
    message for the current turn may claim it; a claimed turn's lease is renewed while its worker
    lives and is taken over once it ran out; an unclaimed turn whose message is overdue is sent again
    (see provisioning/engine/advance.py).
    """

    step = models.ForeignKey(ChecklistStep, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField(help_text="Attempt number of this step, from 1.")
    state = models.CharField(
        max_length=10, choices=StepRunStateChoices.choices, default=StepRunStateChoices.RUNNING
    )
    phase = models.CharField(max_length=30, default="begin", help_text="Where the attempt is, e.g. wait_create.")
    turn = models.PositiveIntegerField(
        default=0, help_text="Turns claimed so far: the next message must carry this number to claim one."
    )
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="While a worker holds the turn: until when (renewed while it runs)."
    )
    due_at = models.DateTimeField(
        null=True, blank=True,
        help_text="While no worker holds the turn: when its message is overdue and is sent again.",
    )
    started_at = models.DateTimeField()
    deadline = models.DateTimeField(help_text="After this the reaper takes the attempt back as failed.")
    finished_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_by_label = models.CharField(max_length=150, blank=True)
    follow_on = models.BooleanField(
        default=False, help_text="Queue the steps that become ready when this one is done (provision all)."
    )
    upid = models.CharField(max_length=200, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    output_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="What a later turn needs (signal id, ...).")

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "step run"
        constraints = [
            models.UniqueConstraint(
                fields=["step"], condition=Q(state="running"), name="steprun_one_running_per_step"
            ),
            models.UniqueConstraint(fields=["step", "number"], name="steprun_unique_number"),
        ]
        indexes = [models.Index(fields=["state", "deadline"], name="steprun_state_deadline")]

    def __str__(self):
        return f"{self.step} attempt {self.number} ({self.state})"


class ChecklistEvent(models.Model):
    """The audit trail of the checklist: every change of a step, who made it, when and why.

    Append-only: a saved event is never changed or deleted by the portal.
    """

    container = models.ForeignKey(Container, on_delete=models.CASCADE, related_name="checklist_events")
    step = models.CharField(max_length=20, choices=StepChoices.choices)
    from_state = models.CharField(max_length=10, choices=StepStateChoices.choices)
    to_state = models.CharField(max_length=10, choices=StepStateChoices.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="Who or what made the change.")
    reason = models.TextField(blank=True)
    run = models.ForeignKey(StepRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "checklist event"

    def __str__(self):
        return f"CT{self.container_id} {self.step}: {self.from_state} -> {self.to_state} by {self.actor_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("Checklist events are append-only: record a new event instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Checklist events are append-only and cannot be deleted.")


class Drift(models.Model):
    """A difference the drift check found between Proxmox and the record of a container.

    One open finding per host, vmid and kind (a partial unique index): a repeated check refreshes
    ``last_seen_at`` instead of piling up rows; a finding that went away gets ``resolved_at``.
    """

    host = models.ForeignKey(ProxmoxHost, on_delete=models.CASCADE, related_name="drifts")
    vmid = models.PositiveIntegerField()
    container = models.ForeignKey(
        Container, on_delete=models.CASCADE, null=True, blank=True, related_name="drifts",
        help_text="Empty for a container on the host the portal does not know.",
    )
    kind = models.CharField(max_length=10, choices=DriftKindChoices.choices)
    expected = models.CharField(max_length=200, blank=True, help_text="What the record says.")
    actual = models.CharField(max_length=200, blank=True, help_text="What Proxmox says.")
    detected_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["host__name", "vmid", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["host", "vmid", "kind"], condition=Q(resolved_at__isnull=True), name="drift_one_open_per_kind"
            ),
        ]

    def __str__(self):
        return f"CT{self.vmid} {self.get_kind_display()}: record {self.expected or '-'}, Proxmox {self.actual or '-'}"
