from django.contrib import admin
from django.db import models
from django.template.loader import render_to_string

from .models import Container, NetworkBridge, ProxmoxHost
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
