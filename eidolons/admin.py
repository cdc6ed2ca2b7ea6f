"""The eidolons admin: Eidolons with their agents inline, agents, mailboxes, the signals (read-only)
and API tokens (issued once, shown once, revoked by an action)."""


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


# --- Signals and API tokens (issue 4) ---------------------------------------------------------
from django.contrib import messages  # noqa: E402
from django.template.response import TemplateResponse  # noqa: E402

from .models import ApiToken, Signal  # noqa: E402
from .services import api_token_issue, api_token_revoke  # noqa: E402


@admin.register(Signal)
class SignalAdmin(admin.ModelAdmin):
    """Every Eidolon's inbox: read-only (signals are written by moves and by the agents)."""

    list_display = ("created_at", "signal_type", "sender", "recipient", "agent", "lead", "delivery_count",
                    "delivered_at", "acknowledged_at")
    list_filter = ("signal_type", "recipient", ("acknowledged_at", admin.EmptyFieldListFilter))
    list_select_related = ("recipient", "agent__eidolon", "lead")
    search_fields = ("sender", "recipient__name", "lead__company")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Issue a token (shown once on the next page), see when it was last used, revoke it."""

    list_display = ("prefix", "eidolon", "agent", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("eidolon", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("eidolon", "agent__eidolon")
    search_fields = ("prefix", "name", "eidolon__name")
    actions = ("revoke",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("eidolon", "agent", "name")
        return ("eidolon", "agent", "name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("eidolon", "agent", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        token, raw = api_token_issue(eidolon=obj.eidolon, agent=obj.agent, name=obj.name, created_by=request.user)
        obj.pk, obj.prefix, obj.digest = token.pk, token.prefix, token.digest
        obj._state.adding = False
        request._maxportal_issued_token = raw

    def response_add(self, request, obj, post_url_continue=None):
        raw = getattr(request, "_maxportal_issued_token", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        # Rendered once, straight into this response: the token is never stored, not even in a message.
        context = {**self.admin_site.each_context(request), "token": obj, "raw": raw, "opts": self.opts,
                   "title": "API token issued"}
        response = TemplateResponse(request, "admin/eidolons/apitoken/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s); they stop working at once.")

# --- SapWaves (issue 9): registered by their own module ------------------------------------------
from .sapwaves import admin as _sapwaves_admin  # noqa: E402, F401
