"""The admin of SapWaves: waves (with next fire times, last run, edit history), their runs, the
Eidolons' pauses, and stale-agent episodes. Imported by ``eidolons/admin.py``.

Every write goes through ``sapwaves.services`` (the same calls as the staff page), so an edit here
reaches beat's PeriodicTask in the same transaction and takes effect without restarting beat.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from maxportal.kernel.actors import Actor
from maxportal.kernel.admin import ReadOnlyInline
from maxportal.kernel.errors import DomainError

from ..models import CliAgent, EidolonSapWavePause, SapWave, SapWaveRun, SapWaveTarget, StaleAgentEpisode
from . import selectors, services


class SapWaveActionForm(ActionForm):
    reason = forms.CharField(required=False, help_text="Why (needed to pause).",
                             widget=forms.TextInput(attrs={"placeholder": "reason (to pause)"}))


class SapWaveForm(forms.ModelForm):
    """The model's own checks, then the service's (schedule, target, pause reason) on their fields."""

    class Meta:
        model = SapWave
        fields = ("name", "kind", "description", "prompt", "owner", "target_kind", "target_eidolon", "target_agent",
                  "target_set", *services.SCHEDULE_FIELDS, "expires_at", "catchup_policy", "catchup_window_minutes",
                  "overlap_policy", "cap_policy", "jitter_seconds", "answer_timeout_minutes", "enabled",
                  "paused_reason")

    def _post_clean(self):
        super()._post_clean()
        try:
            services.sapwave_validate(self.instance, target_set=self.cleaned_data.get("target_set"))
        except ValidationError as exc:
            self._update_errors(exc)


def _fire_times(wave) -> str:
    times = selectors.next_fire_times(wave)
    if not times:
        return "past one-off" if selectors.wave_is_past(wave) else "none (paused or expired)"
    return format_html_join(
        "", "<div>{} UTC <small>({} {})</small></div>",
        ((t.utc.strftime("%Y-%m-%d %H:%M"), t.local.strftime("%Y-%m-%d %H:%M"), wave.timezone) for t in times),
    )


@admin.register(SapWave)
class SapWaveAdmin(SimpleHistoryAdmin):
    form = SapWaveForm
    list_display = ("name", "kind", "targets", "schedule", "enabled", "next_fires", "last_run", "last_outcome")
    list_filter = ("kind", "enabled", "schedule_kind", "target_kind")
    search_fields = ("name", "description", "prompt")
    action_form = SapWaveActionForm
    actions = ("run_now", "pause", "resume")
    filter_horizontal = ("target_set",)
    readonly_fields = ("next_fires", "last_outcome", "paused_at", "paused_by", "schedule_from",
                       "plan_key", "beat_entry", "recent_runs")
    fieldsets = (
        (None, {"fields": ("name", "kind", "description", "prompt", "owner")}),
        ("Target", {"fields": ("target_kind", "target_eidolon", "target_agent", "target_set")}),
        ("Schedule", {"fields": ("schedule_kind", ("cron_minute", "cron_hour", "cron_day_of_month",
                                                  "cron_month_of_year", "cron_day_of_week"), "timezone",
                                 ("interval_minutes", "interval_anchor"), "clocked_at", "expires_at", "next_fires")}),
        ("Policies", {"fields": ("catchup_policy", "catchup_window_minutes", "overlap_policy", "cap_policy",
                                 "jitter_seconds", "answer_timeout_minutes")}),
        ("State", {"fields": ("enabled", "paused_at", "paused_by", "paused_reason", "schedule_from", "last_outcome",
                              "plan_key", "beat_entry")}),
        ("Recent runs", {"fields": ("recent_runs",)}),
    )
    history_list_display = ("enabled", "cron_minute", "cron_hour", "timezone", "interval_minutes", "clocked_at")

    def get_queryset(self, request):
        return selectors.waves_with_last_run()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "target_agent":  # labelled "<Eidolon>/<kind>": one query for all, not one each
            kwargs["queryset"] = CliAgent.objects.select_related("eidolon")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Targets")
    def targets(self, obj):
        return selectors.target_label(obj)

    @admin.display(description="Schedule")
    def schedule(self, obj):
        return selectors.schedule_label(obj)

    @admin.display(description="Next five fires (UTC, and the wave's zone)")
    def next_fires(self, obj):
        return _fire_times(obj) if obj.pk else "—"

    @admin.display(description="Last run", ordering="last_slot")
    def last_run(self, obj):
        return f"{obj.last_slot:%Y-%m-%d %H:%M} UTC" if getattr(obj, "last_slot", None) else "—"

    @admin.display(description="Outcome")
    def last_outcome(self, obj):
        return selectors.last_run_outcome(obj) if hasattr(obj, "last_run_id") else "—"

    @admin.display(description="Last 20 runs")
    def recent_runs(self, obj):
        if not obj.pk:
            return "—"
        rows = ((r.pk, r.slot.strftime("%Y-%m-%d %H:%M"), r.get_trigger_display(), r.triggered_by,
                 selectors.run_outcome(r)) for r in selectors.wave_recent_runs(obj))
        return format_html_join("", '<div><a href="../../sapwaverun/{}/change/">{} UTC</a> {} by {}: {}</div>', rows)

    @admin.display(description="Beat entry")
    def beat_entry(self, obj):
        task = obj.periodic_task
        if task is None:
            return "—"
        return f"{task.name}: {'enabled' if task.enabled else 'disabled'}, {task.crontab or task.clocked}"

    def get_object(self, request, object_id, from_field=None):
        # The change page shows the last run too: read it with the same annotations as the list.
        return self.get_queryset(request).filter(pk=object_id).first()

    def save_model(self, request, obj, form, change):
        services.sapwave_save(wave=obj, actor=Actor.for_user(request.user, "admin"),
                              target_set=form.cleaned_data.get("target_set"))

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)  # the target set was saved by the service

    def delete_model(self, request, obj):
        services.sapwave_delete(wave=obj)

    def delete_queryset(self, request, queryset):
        for wave in queryset:
            services.sapwave_delete(wave=wave)

    def _each(self, request, queryset, call, done: str):
        actor = Actor.for_user(request.user, "admin")
        count = 0
        for wave in queryset:
            try:
                call(wave, actor)
                count += 1
            except (DomainError, ValidationError) as exc:
                messages.error(request, f"{wave.name}: {getattr(exc, 'message', exc)}")
        if count:
            messages.success(request, f"{done} {count} wave(s).")

    @admin.action(description="Run now (one run for this minute's slot)")
    def run_now(self, request, queryset):
        def run(wave, actor):
            run, created = services.sapwave_run_now(wave=wave, actor=actor)
            if not created:
                messages.warning(request, f"{wave.name} already ran for {run.slot:%H:%M} UTC (run #{run.pk}).")
        self._each(request, queryset, run, "Ran")

    @admin.action(description="Pause (give a reason)")
    def pause(self, request, queryset):
        reason = request.POST.get("reason", "")
        self._each(request, queryset, lambda w, a: services.sapwave_pause(wave=w, actor=a, reason=reason), "Paused")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self._each(request, queryset, lambda w, a: services.sapwave_resume(wave=w, actor=a), "Resumed")


class SapWaveTargetInline(ReadOnlyInline):
    model = SapWaveTarget
    fields = ("eidolon", "agent", "outcome", "not_before", "sent_at", "answered_at", "answered_by", "signal")
    readonly_fields = fields

    @admin.display(description="Outcome")
    def outcome(self, obj):
        return selectors.target_outcome(obj)


@admin.register(SapWaveRun)
class SapWaveRunAdmin(admin.ModelAdmin):
    """Runs are written by firing only: read-only here."""

    list_display = ("wave", "slot", "trigger", "state", "skip_reason", "triggered_by", "created_at")
    list_filter = ("state", "trigger", "skip_reason", "wave")
    list_select_related = ("wave",)
    date_hierarchy = "slot"
    inlines = [SapWaveTargetInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EidolonSapWavePause)
class EidolonSapWavePauseAdmin(admin.ModelAdmin):
    """An Eidolon no wave wakes; delete the pause to resume it."""

    list_display = ("eidolon", "paused_at", "paused_by", "reason")
    fields = ("eidolon", "reason")

    def save_model(self, request, obj, form, change):
        pause = services.eidolon_sapwaves_pause(eidolon=obj.eidolon, actor=Actor.for_user(request.user, "admin"),
                                                reason=obj.reason)
        obj.pk = pause.pk


@admin.register(StaleAgentEpisode)
class StaleAgentEpisodeAdmin(admin.ModelAdmin):
    """Agents that went silent, each with the ESCALATION it raised (written by the stale-agents job)."""

    list_display = ("agent", "last_heartbeat_at", "detected_at", "ended_at", "escalation")
    list_filter = (("ended_at", admin.EmptyFieldListFilter),)
    list_select_related = ("agent__eidolon", "signal")

    @admin.display(description="Escalation")
    def escalation(self, obj):
        return format_html("signal #{}", obj.signal_id) if obj.signal_id else "—"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
