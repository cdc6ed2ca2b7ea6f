"""Writes of SapWaves: saving a wave (and its beat entry), pauses, run now, the plan's schedule.

A wave's PeriodicTask (django-celery-beat) is written in the same transaction as the wave, so
beat's DatabaseScheduler sees an edit within its reload interval, without a restart. Firing,
the cap, answers and the sweep are in ``firing`` (re-exported here: the one entry point for the
interfaces and for leads).
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

from maxportal.kernel.actors import Actor
from maxportal.kernel.errors import NotAllowed, ReasonRequired
from maxportal.kernel.plans import PlanLoadReport

from ..models import CliAgent, Eidolon, EidolonSapWavePause, SapWave, SapWaveRun
from . import plan, slots
from .choices import SapWaveTargetChoices, SapWaveTriggerChoices
from .firing import (  # noqa: F401 (re-exported)
    DISPATCH_TASK,
    FIRE_TASK,
    SweepReport,
    due_slots,
    sapwave_fire_due,
    sapwave_fire_slot,
    sapwave_runs_mark_answered,
    sapwaves_dispatch,
    sapwaves_sweep,
    wave_spec,
    wave_targets,
)

PERIODIC_TASK_PREFIX = "sapwave:"
SCHEDULE_FIELDS = ("schedule_kind", "cron_minute", "cron_hour", "cron_day_of_month", "cron_month_of_year",
                   "cron_day_of_week", "timezone", "interval_minutes", "interval_anchor", "clocked_at")


# --- Saving a wave and its beat entry --------------------------------------------------------------


def sapwave_validate(wave: SapWave, *, target_set=None) -> None:
    """Refuse a wave that cannot be fired, naming the field: a schedule slots cannot evaluate, a
    target that is not set, a pause without a reason. The admin's form shows these on its fields."""
    try:
        slots.validate(wave_spec(wave))
    except slots.SlotSpecError as exc:
        crontab_field = exc.field in slots.Crontab.__dataclass_fields__ and exc.field != "timezone"
        name = f"cron_{exc.field}" if crontab_field else exc.field
        raise ValidationError({name: str(exc)}) from None
    if wave.target_kind == SapWaveTargetChoices.AGENT and not wave.target_agent_id:
        raise ValidationError({"target_agent": "Choose the agent this wave wakes."})
    if wave.target_kind == SapWaveTargetChoices.EIDOLON and not wave.target_eidolon_id:
        raise ValidationError({"target_eidolon": "Choose the Eidolon this wave wakes."})
    if target_set is not None and wave.target_kind == SapWaveTargetChoices.SET and not list(target_set):
        raise ValidationError({"target_set": "A wave for 'a set of Eidolons' needs at least one Eidolon."})
    if not wave.enabled and not (wave.paused_reason or "").strip():
        raise ValidationError({"paused_reason": "Say why the wave is paused (the reason is shown on the wave)."})


def sapwave_save(*, wave: SapWave, actor, target_set=None) -> SapWave:
    """Validate and save a wave (new or edited) and bring its PeriodicTask in step.

    A changed schedule starts from now: slots of the new schedule that lie in the past never fire.
    ``target_set`` (Eidolons) replaces the set for 'a set of Eidolons' waves.
    """
    sapwave_validate(wave, target_set=target_set)
    if wave.target_kind == SapWaveTargetChoices.AGENT:
        wave.target_eidolon_id = wave.target_agent.eidolon_id
    if wave.target_kind not in (SapWaveTargetChoices.EIDOLON, SapWaveTargetChoices.AGENT):
        wave.target_eidolon = None
    if wave.target_kind != SapWaveTargetChoices.AGENT:
        wave.target_agent = None
    now = timezone.now()
    with transaction.atomic():
        schedule_changed = wave.pk is None
        if wave.pk is not None:
            before = SapWave.objects.select_for_update().get(pk=wave.pk)
            schedule_changed = any(getattr(before, f) != getattr(wave, f) for f in SCHEDULE_FIELDS)
        if schedule_changed or wave.schedule_from is None:
            wave.schedule_from = now
        if wave.owner_id is None and getattr(actor, "user", None) is not None:
            wave.owner = actor.user
        if wave.enabled:
            wave.paused_at, wave.paused_by, wave.paused_reason = None, "", ""
        elif wave.paused_at is None:
            wave.paused_at, wave.paused_by = now, actor.label
        # The check constraints are the database's (sapwave_validate gave their errors words above).
        wave.full_clean(validate_constraints=False)
        wave._history_user = getattr(actor, "user", None)  # django-simple-history records who changed it
        wave.save()
        if target_set is not None:
            wave.target_set.set(target_set)
        if wave.target_kind == SapWaveTargetChoices.SET and not wave.target_set.exists():
            raise ValidationError({"target_set": "A wave for 'a set of Eidolons' needs at least one Eidolon."})
        _periodic_task_sync(wave, reset_last_run=schedule_changed)
    return wave


def _periodic_task_sync(wave: SapWave, *, reset_last_run: bool) -> PeriodicTask:
    """Write the wave's beat entry: a crontab (interval waves as the equivalent UTC crontab) or a clocked one-off."""
    spec = wave_spec(wave)
    values = {"interval": None, "solar": None, "crontab": None, "clocked": None}
    if isinstance(spec, slots.Clocked):
        values["clocked"] = (ClockedSchedule.objects.filter(clocked_time=spec.at).first()
                             or ClockedSchedule.objects.create(clocked_time=spec.at))
        values["one_off"] = True
    else:
        cron = slots.interval_as_crontab(spec) if isinstance(spec, slots.Interval) else spec
        fields = {"minute": cron.minute, "hour": cron.hour, "day_of_month": cron.day_of_month,
                  "month_of_year": cron.month_of_year, "day_of_week": cron.day_of_week, "timezone": cron.timezone}
        values["crontab"] = CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(**fields)
        values["one_off"] = False
    now = timezone.now()
    past_one_off = isinstance(spec, slots.Clocked) and spec.at <= wave.schedule_from
    expired = wave.expires_at is not None and wave.expires_at <= now
    task = wave.periodic_task or PeriodicTask(name=f"{PERIODIC_TASK_PREFIX}{wave.pk}")
    task.task = FIRE_TASK
    task.kwargs = json.dumps({"wave_id": wave.pk})
    task.enabled = wave.enabled and not past_one_off and not expired
    task.expires = wave.expires_at
    task.description = f"SapWave {wave.name} (managed by the SapWave; edit the wave, not this entry)"
    for name, value in values.items():
        setattr(task, name, value)
    if reset_last_run:
        # Beat would otherwise count the new schedule's slots since the last run as due at once.
        task.last_run_at = now
    task.save()  # django-celery-beat bumps its change marker: beat reloads its schedule
    if wave.periodic_task_id != task.pk:
        SapWave.objects.filter(pk=wave.pk).update(periodic_task=task)
        wave.periodic_task = task
    return task


def sapwave_delete(*, wave: SapWave) -> None:
    with transaction.atomic():
        task_id = wave.periodic_task_id
        wave.delete()
        PeriodicTask.objects.filter(pk=task_id).delete()


# --- Pause and resume ------------------------------------------------------------------------------


def sapwave_pause(*, wave: SapWave, actor, reason: str) -> SapWave:
    """Pause a wave (who and why are kept); its slots do not fire until it is resumed."""
    if not (reason or "").strip():
        raise ReasonRequired(f"Say why {wave.name} is paused (the reason is shown on the wave).")
    if not wave.enabled:
        return wave
    wave.enabled = False
    wave.paused_at, wave.paused_by, wave.paused_reason = timezone.now(), actor.label, reason.strip()
    return sapwave_save(wave=wave, actor=actor)


def sapwave_resume(*, wave: SapWave, actor) -> SapWave:
    """Resume a paused wave from now: slots that passed while it was paused never fire."""
    if wave.enabled:
        return wave
    wave.enabled = True
    wave.schedule_from = timezone.now()
    saved = sapwave_save(wave=wave, actor=actor)
    PeriodicTask.objects.filter(pk=saved.periodic_task_id).update(last_run_at=saved.schedule_from)
    return saved


def sapwaves_pause_bulk(*, waves, actor, reason: str) -> int:
    """Pause many waves at once (the admin action, the page's "pause all"); returns how many changed."""
    if not (reason or "").strip():
        raise ReasonRequired("Say why the waves are paused.")
    changed = 0
    with transaction.atomic():
        for wave in waves:
            if wave.enabled:
                sapwave_pause(wave=wave, actor=actor, reason=reason)
                changed += 1
    return changed


def sapwaves_resume_bulk(*, waves, actor) -> int:
    changed = 0
    with transaction.atomic():
        for wave in waves:
            if not wave.enabled:
                sapwave_resume(wave=wave, actor=actor)
                changed += 1
    return changed


def eidolon_sapwaves_pause(*, eidolon: Eidolon, actor, reason: str) -> EidolonSapWavePause:
    """No wave wakes ``eidolon`` until it is resumed (its targets are skipped: Eidolon paused)."""
    if not (reason or "").strip():
        raise ReasonRequired(f"Say why {eidolon} gets no SapWaves.")
    pause, _ = EidolonSapWavePause.objects.get_or_create(
        eidolon=eidolon, defaults={"paused_at": timezone.now(), "paused_by": actor.label, "reason": reason.strip()}
    )
    return pause


def eidolon_sapwaves_resume(*, eidolon: Eidolon, actor) -> bool:
    return EidolonSapWavePause.objects.filter(eidolon=eidolon).delete()[0] > 0


def sapwave_run_now(*, wave: SapWave, actor) -> tuple[SapWaveRun, bool]:
    """Fire the wave now, for the current minute's slot: a second click within the minute finds
    that run and fires nothing (created False). Run now wakes a paused wave too (a person asked)."""
    slot = timezone.now().replace(second=0, microsecond=0)
    wave = SapWave.objects.select_related("target_agent__eidolon", "target_eidolon").get(pk=wave.pk)
    if wave.expires_at is not None and slot > wave.expires_at:
        raise NotAllowed(f"{wave.name} expired at {wave.expires_at:%Y-%m-%d %H:%M} UTC; change its expiry to run it.")
    return sapwave_fire_slot(wave=wave, slot=slot, trigger=SapWaveTriggerChoices.MANUAL, triggered_by=actor.label)


# --- The master plan's schedule -------------------------------------------------------------------

PLAN_LOADER = "plan loader"


def sapwaves_plan_load(report: PlanLoadReport | None = None) -> PlanLoadReport:
    """Create the master plan's SapWaves (``plan.WAVES``) that are missing; a second run creates nothing.

    A wave an operator changed is left as it is and the difference reported. Needs the plan's
    Eidolons (the MAX plan's loader calls it after creating them, adding to its ``report``); the
    tonight one-offs are in the past and never fire.
    """
    actor = Actor.for_system(PLAN_LOADER)
    report = report if report is not None else PlanLoadReport()
    with transaction.atomic():
        for spec in plan.WAVES:
            values = {"name": spec["name"], "kind": spec["kind"], "description": spec["description"],
                      "prompt": spec["prompt"], **spec["schedule"]}
            for key in ("jitter_seconds", "answer_timeout_minutes"):
                if key in spec:
                    values[key] = spec[key]
            if spec["target"] is None:
                values["target_kind"] = SapWaveTargetChoices.ALL_MAX
            else:
                slug, kind = spec["target"]
                values["target_kind"] = SapWaveTargetChoices.AGENT
                values["target_agent"] = CliAgent.objects.select_related("eidolon").get(eidolon__slug=slug, kind=kind)
            existing = SapWave.objects.filter(plan_key=spec["plan_key"]).first()
            if existing is None:
                sapwave_save(wave=SapWave(plan_key=spec["plan_key"], **values), actor=actor)
                report.created.append(f"SapWave {spec['name']}")
                continue
            report.unchanged += 1
            for name, planned in values.items():
                current = getattr(existing, name)
                if hasattr(planned, "pk"):
                    current, planned = getattr(existing, f"{name}_id"), planned.pk
                if current != planned:
                    report.differences.append(f"SapWave {existing.name}: {name} is {current!r}, the plan says "
                                              f"{planned!r} (left as is)")
    return report
