from django.contrib import admin
from django.utils.html import format_html

from .models import CliAgent, Eidolon, M365Account


class CliAgentInline(admin.TabularInline):
    model = CliAgent
    extra = 0
    max_num = 4
    fields = ("kind", "npm_package", "tmux_session", "systemd_unit", "status", "last_heartbeat_at", "reported_version")
    readonly_fields = ("last_heartbeat_at", "reported_version")


@admin.register(Eidolon)
class EidolonAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "stage", "container_label", "mailbox", "mailbox_state")
    list_filter = ("stage", "mailbox__state")
    search_fields = ("name", "slug", "role", "mailbox__address", "container__hostname")
    list_select_related = ("container", "mailbox")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("mailbox_summary",)
    fields = ("name", "slug", "role", "stage", "container", "mailbox", "mailbox_summary", "personality_notes")
    autocomplete_fields = ("container", "mailbox")
    inlines = [CliAgentInline]

    @admin.display(description="Container", ordering="container__vmid")
    def container_label(self, obj):
        return str(obj.container) if obj.container else "none (local)"

    @admin.display(description="Mailbox state", ordering="mailbox__state")
    def mailbox_state(self, obj):
        return obj.mailbox.get_state_display() if obj.mailbox else "—"

    @admin.display(description="Mailbox")
    def mailbox_summary(self, obj):
        box = obj.mailbox
        if box is None:
            return "No mailbox."
        return format_html(
            "{} — {} · {} · Teams {} · Outlook {}",
            box.address,
            box.licence,
            box.get_state_display(),
            "on" if box.teams_enabled else "off",
            "on" if box.outlook_enabled else "off",
        )


@admin.register(CliAgent)
class CliAgentAdmin(admin.ModelAdmin):
    list_display = (
        "__str__", "kind", "status", "tmux_session", "systemd_unit", "last_heartbeat_at", "reported_version",
    )
    list_filter = ("kind", "status", "eidolon")
    search_fields = ("eidolon__name", "kind", "npm_package", "tmux_session")
    list_select_related = ("eidolon",)
    autocomplete_fields = ("eidolon",)


@admin.register(M365Account)
class M365AccountAdmin(admin.ModelAdmin):
    list_display = ("address", "display_name", "licence", "state", "teams_enabled", "outlook_enabled", "eidolon")
    list_filter = ("state", "licence", "teams_enabled", "outlook_enabled")
    search_fields = ("address", "display_name", "eidolon__name")
    list_select_related = ("eidolon",)
