"""The leads admin: history, signals and artifacts inline; every state change through the stage machine."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from eidolons.choices import PipelineStage
from eidolons.models import Signal
from eidolons.selectors import stage_owners
from maxportal.kernel.actors import Actor
from maxportal.kernel.admin import ReadOnlyAdminMixin, ReadOnlyInline
from maxportal.kernel.errors import DomainError

from . import services, stages
from .models import Lead, StageArtifact, StageSetting, StageTransition
from .selectors import lead_owner_name, leads_owned_by


class LeadActionForm(ActionForm):
    """The admin's action bar: the reason (and, to reassign, the stage) the moves need."""

    reason = forms.CharField(
        required=False, max_length=2000, help_text="Why (needed to escalate, fail, reopen, reassign)."
    )
    to_stage = forms.ChoiceField(required=False, choices=[("", "stage…"), *PipelineStage.choices])


class OwnerFilter(admin.SimpleListFilter):
    """Filter by the Eidolon owning the lead's current stage."""

    title = "owner"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        return [(e.slug, e.name) for e in stage_owners().values()]

    def queryset(self, request, queryset):
        return leads_owned_by(queryset, slug=self.value()) if self.value() else queryset


class StageTransitionInline(ReadOnlyInline):
    model = StageTransition
    fields = ("created_at", "move", "from_stage", "from_status", "to_stage", "to_status", "actor", "summary", "signal")
    readonly_fields = fields
    verbose_name_plural = "History (append-only)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor_eidolon", "actor_agent__eidolon", "actor_user",
                                                            "signal")

    @admin.display(description="Actor")
    def actor(self, obj):
        return obj.actor_label


class SignalInline(ReadOnlyInline):
    model = Signal
    fields = ("created_at", "signal_type", "sender", "recipient", "delivered_at", "delivery_count", "acknowledged_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recipient")


class StageArtifactInline(ReadOnlyInline):
    model = StageArtifact
    fields = ("created_at", "stage", "kind", "link", "size", "checksum", "uploaded_by_eidolon", "uploaded_by_user")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("uploaded_by_eidolon", "uploaded_by_user")

    @admin.display(description="Artifact")
    def link(self, obj):
        return format_html('<a href="{}">{}</a>', obj.file.url, obj.name) if obj.file else obj.name


def _move_action(move: stages.Move):
    """An admin action making ``move`` on each selected lead, with the reason (and stage) of the action bar."""

    def action(model_admin, request, queryset):
        model_admin._move(request, queryset, move.name)

    action.__name__ = move.name.value  # the action's name in the form: "escalate"
    return admin.action(description=f"{move.label}{' (give a reason)' if move.needs_reason else ''}")(action)


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ("company", "contact_name", "stage", "owner", "status", "source", "stage_entered_at", "updated_at")
    list_filter = ("stage", "status", OwnerFilter, "source")
    search_fields = ("company", "contact_name", "email", "company_domain", "id")
    date_hierarchy = "created_at"
    action_form = LeadActionForm
    # One action per move the stage machine offers the admin (leads/stages.py, ``in_admin``).
    actions = [_move_action(move) for move in stages.MOVES.values() if move.in_admin]
    inlines = (StageTransitionInline, SignalInline, StageArtifactInline)
    fields = ("company", "contact_name", "email", "phone", "source", "amount", "currency", "stage", "status",
              "next_action", "data", "created_at", "updated_at", "stage_entered_at")

    def get_readonly_fields(self, request, obj=None):
        # Stage and status change only through the stage machine (the actions), never by editing.
        fixed = ("stage", "status", "created_at", "updated_at", "stage_entered_at")
        return (*fixed, "email") if obj else fixed

    def get_queryset(self, request):
        # The owner column comes with the rows (no per-row query, no state kept on the shared admin).
        return super().get_queryset(request).annotate(owner_name=lead_owner_name())

    @admin.display(description="Owner", ordering="stage")
    def owner(self, obj):
        return obj.owner_name or "—"

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user, "admin")
        if change:
            services.lead_update_details(lead_id=obj.pk, actor=actor, **{
                name: form.cleaned_data[name] for name in form.changed_data if name in services.LEAD_DETAIL_FIELDS
            })
            return
        lead, duplicate = services.lead_ingest(
            actor=actor, company=obj.company, email=obj.email, contact_name=obj.contact_name, phone=obj.phone,
            source=obj.source, data=obj.data, next_action=obj.next_action, summary="Entered in the admin",
            amount=obj.amount, currency=obj.currency,
        )
        if duplicate:
            messages.warning(request, f"An open lead with this email or company domain exists: {duplicate}. "
                                      "Nothing was created; this is that lead.")
        obj.pk = lead.pk
        obj._state.adding = False

    def _move(self, request, queryset, move):
        actor = Actor.for_user(request.user, "admin")
        reason = request.POST.get("reason", "")
        to_stage = request.POST.get("to_stage") or None
        done, refused = 0, []
        for lead in queryset:
            try:
                services.lead_move(lead_id=lead.pk, move=move, actor=actor, reason=reason, to_stage=to_stage)
                done += 1
            except DomainError as exc:
                refused.append(f"{lead.company}: {exc.message}")
            except ValidationError as exc:
                refused.append(f"{lead.company}: {' '.join(exc.messages)}")
        if done:
            messages.success(request, f"{move}: {done} lead(s) moved.")
        for text in refused:
            messages.error(request, text)

@admin.register(StageTransition)
class StageTransitionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail, read-only."""

    list_display = ("created_at", "lead", "move", "from_stage", "to_stage", "to_status", "actor_eidolon", "actor_user")
    list_filter = ("move", "to_stage", "to_status", "actor_eidolon")
    list_select_related = ("lead", "actor_eidolon", "actor_user")
    search_fields = ("lead__company", "summary")


@admin.register(StageSetting)
class StageSettingAdmin(admin.ModelAdmin):
    """Per stage: when a lead goes stale on the board, and its win probability for the weighted pipeline.

    The migration creates one row per stage; rows are edited, never added or removed.
    """

    list_display = ("stage", "stale_after_hours", "win_probability")
    list_editable = ("stale_after_hours", "win_probability")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
