from django.contrib import admin, messages
from django.db import models
from django.template.loader import render_to_string
from django.template.response import TemplateResponse

from maxportal.kernel.actors import Actor
from maxportal.kernel.admin import ReadOnlyAdminMixin
from maxportal.kernel.errors import DomainError

from . import drift, services, snapshots
from .models import ChecklistEvent, ChecklistStep, Container, Drift, NetworkBridge, ProxmoxHost, StepRun
from .selectors import host_capacity, host_list_with_allocation


class NetworkBridgeInline(admin.TabularInline):
    model = NetworkBridge
    extra = 0


class ContainerInline(admin.TabularInline):
    model = Container
    extra = 0
    fields = ("vmid", "hostname", "ip_address", "cores", "memory_mb", "rootfs_gb", "managed", "status")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ProxmoxHost)
class ProxmoxHostAdmin(admin.ModelAdmin):
    list_display = ("name", "node", "api_url", "cpu_model", "cores_column", "memory_column", "disk_column")
    search_fields = ("name", "node", "api_url", "cpu_model")
    list_filter = ("verify_tls",)
    readonly_fields = ("capacity",)
    inlines = [NetworkBridgeInline, ContainerInline]
    # A Proxmox API typed without a scheme is https (Django 6's default; silences 5.2's warning).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = (
        (None, {"fields": ("name", "node", "api_url")}),
        ("Credentials", {
            "fields": ("token_id", "token_secret_env", "token_secret_file", "verify_tls", "ca_file"),
            "description": "The token secret is never stored here: name the variable or file that holds it.",
        }),
        ("root@pam and in-container work", {
            "fields": ("root_channel", "root_password_env", "executor", "ssh_host", "ssh_port", "ssh_user",
                       "ssh_key_file", "ssh_known_hosts_file"),
            "description": "Proxmox refuses keyctl=1 and bind mounts to API tokens: pick a root@pam channel.",
        }),
        ("Hardware", {"fields": ("cpu_model", "cpu_cores", "cpu_threads", "memory_mb", "storage_gb", "disks")}),
        ("Allocated against capacity", {"fields": ("capacity",)}),
    )

    def get_queryset(self, request):
        return host_list_with_allocation()

    @admin.display(description="Cores / threads")
    def cores_column(self, obj):
        return f"{obj.cores_allocated or 0} / {obj.cpu_threads}"

    @admin.display(description="Memory GB")
    def memory_column(self, obj):
        return f"{(obj.memory_allocated_mb or 0) / 1024:g} / {obj.memory_mb / 1024:g}"

    @admin.display(description="Disk GB")
    def disk_column(self, obj):
        unknown = f" + {obj.disk_unknown_count} unknown" if obj.disk_unknown_count else ""
        return f"{obj.disk_allocated_gb or 0}{unknown} / {obj.storage_gb}"

    @admin.display(description="Capacity")
    def capacity(self, obj):
        if obj.pk is None:
            return "Save the host to see its capacity."
        return render_to_string("_partials/capacity.html", {"cap": host_capacity(host=obj)})


@admin.register(NetworkBridge)
class NetworkBridgeAdmin(admin.ModelAdmin):
    list_display = ("name", "host", "subnet", "gateway")
    list_select_related = ("host",)
    search_fields = ("name", "subnet", "host__name")
    list_filter = ("host",)


@admin.register(Container)
class ContainerAdmin(admin.ModelAdmin):
    list_display = (
        "vmid", "hostname", "host", "eidolon", "ipv4_cidr", "cores", "memory_mb", "rootfs_gb", "managed", "status",
    )
    list_filter = ("host", "status", "managed", "bridge")
    search_fields = ("hostname", "=vmid", "ip_address", "eidolon__name")
    list_select_related = ("host", "eidolon")
    autocomplete_fields = ("host",)
    fieldsets = (
        (None, {"fields": ("host", "vmid", "hostname", "managed", "status")}),
        ("Network", {"fields": ("bridge", "ip_address", "prefix_length", "gateway")}),
        ("Resources", {"fields": ("cores", "memory_mb", "swap_mb", "rootfs_gb", "storage")}),
        ("Template and features", {"fields": ("ostemplate", "feature_nesting", "feature_keyctl", "unprivileged")}),
    )


# --- The provisioning checklist: every change goes through provisioning.services ---------------


def _actor(request) -> Actor:
    return Actor.for_user(request.user, "admin")


def _report(modeladmin, request, done: list[str], refused: list[str]) -> None:
    if done:
        modeladmin.message_user(request, "; ".join(done), messages.SUCCESS)
    for message in refused:
        modeladmin.message_user(request, message, messages.ERROR)


def _per_container(modeladmin, request, queryset, act) -> None:
    """Run ``act(container) -> summary`` for each selected container; refusals are reported, not raised."""
    done, refused = [], []
    for container in queryset.select_related("host"):
        try:
            done.append(f"CT{container.vmid}: {act(container)}")
        except DomainError as exc:
            refused.append(exc.message)
    _report(modeladmin, request, done, refused)


@admin.action(description="Provision: queue the ready automated steps (each queues the next)")
def provision_containers(modeladmin, request, queryset):
    def provision(container):
        runs = services.container_provision(container=container, actor=_actor(request))
        return f"{len(runs)} step(s) queued"

    _per_container(modeladmin, request, queryset, provision)


@admin.action(description="Check drift on these containers' hosts")
def check_drift(modeladmin, request, queryset):
    done, refused = [], []
    for host in ProxmoxHost.objects.filter(pk__in=queryset.values("host_id")):
        report = drift.drift_check(host=host)
        if report.error:
            refused.append(report.error)
        else:
            done.append(f"{host.name}: {len(report.found)} finding(s)")
    _report(modeladmin, request, done, refused)


@admin.action(description="Snapshot now (refused for containers with a bind mount)")
def snapshot_containers(modeladmin, request, queryset):
    def snapshot(container):
        return f"snapshot task {snapshots.container_snapshot(container=container, actor=_actor(request))}"

    _per_container(modeladmin, request, queryset, snapshot)


ContainerAdmin.actions = [provision_containers, check_drift, snapshot_containers]


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    fields = ("number", "state", "phase", "started_at", "finished_at", "started_by_label", "upid", "exit_code", "error")
    readonly_fields = fields
    can_delete = False
    ordering = ("-number",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChecklistStep)
class ChecklistStepAdmin(admin.ModelAdmin):
    """The checklist cells. Read-only fields: the state moves only through the actions below
    (the same services as the page), so every change is checked and audited."""

    list_display = ("container", "step", "state", "attempts", "actor_label", "changed_at", "short_note")
    list_filter = ("step", "state", "container__host")
    list_select_related = ("container",)
    search_fields = ("=container__vmid", "container__hostname", "note")
    readonly_fields = ("container", "step", "state", "attempts", "actor", "actor_label", "changed_at", "upid",
                       "output_tail")
    fields = (*readonly_fields, "note")
    inlines = [StepRunInline]
    actions = ["tick_steps", "run_steps", "untick_steps", "skip_steps"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Note")
    def short_note(self, obj):
        return (obj.note[:80] + "…") if len(obj.note) > 80 else obj.note

    def save_model(self, request, obj, form, change):
        # Only the note is editable here; it is audited like any change.
        if "note" in form.changed_data:
            services.step_note_set(container=obj.container, step=obj.step, actor=_actor(request), note=obj.note)

    def _each(self, request, queryset, call, verb: str):
        done, refused = [], []
        for row in queryset.select_related("container__host"):
            try:
                call(row)
            except DomainError as exc:
                refused.append(exc.message)
                continue
            done.append(f"CT{row.container.vmid} {row.get_step_display()}")
        _report(self, request, [f"{verb}: {', '.join(done)}"] if done else [], refused)

    @admin.action(description="Tick as done (manual steps)")
    def tick_steps(self, request, queryset):
        self._each(request, queryset, lambda row: services.step_tick(
            container=row.container, step=row.step, actor=_actor(request)), "Ticked")

    @admin.action(description="Run or retry (automated steps)")
    def run_steps(self, request, queryset):
        self._each(request, queryset, lambda row: services.step_run_start(
            container=row.container, step=row.step, actor=_actor(request)), "Queued")

    def _with_reason(self, request, queryset, action: str, title: str, call, verb: str):
        reason = (request.POST.get("reason") or "").strip()
        if request.POST.get("confirmed") and reason:
            self._each(request, queryset, lambda row: call(row, reason), verb)
            return None
        return TemplateResponse(request, "provisioning/admin_reason.html", {
            **self.admin_site.each_context(request),
            "title": title,
            "queryset": queryset.select_related("container"),
            "action": action,
            "opts": self.model._meta,
            "missing": bool(request.POST.get("confirmed")) and not reason,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    @admin.action(description="Untick (asks for a reason)")
    def untick_steps(self, request, queryset):
        return self._with_reason(request, queryset, "untick_steps", "Untick steps: why?", lambda row, reason: (
            services.step_untick(container=row.container, step=row.step, actor=_actor(request), reason=reason)),
            "Unticked")

    @admin.action(description="Skip (asks for a reason)")
    def skip_steps(self, request, queryset):
        return self._with_reason(request, queryset, "skip_steps", "Skip steps: why?", lambda row, reason: (
            services.step_skip(container=row.container, step=row.step, actor=_actor(request), reason=reason)),
            "Skipped")


@admin.register(ChecklistEvent)
class ChecklistEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: append-only, so read-only here."""

    list_display = ("at", "container", "step", "from_state", "to_state", "actor_label", "reason")
    list_filter = ("step", "to_state", "container__host")
    list_select_related = ("container",)
    search_fields = ("=container__vmid", "actor_label", "reason")


@admin.register(Drift)
class DriftAdmin(admin.ModelAdmin):
    list_display = ("host", "vmid", "container", "kind", "expected", "actual", "detected_at", "last_seen_at",
                    "resolved_at")
    list_filter = ("kind", "host", ("resolved_at", admin.EmptyFieldListFilter))
    list_select_related = ("host", "container")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
