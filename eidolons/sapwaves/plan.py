"""The master plan's SapWave Schedule as data (../shared/seeds/001, "SapWave Schedule"), loaded by
``services.sapwaves_plan_load``. Times in the plan are UTC.

Targets follow the plan's delegation matrix where it names one: "Coordination & oversight ->
Claude (Team lead role)", "Shell scripts -> Codex", "Agent config research -> Gemini". The team the
plan speaks of is the core Orchestra on CT100, i.e. the Mach42v2 Eidolon's agents.

The plan's "Every 12 min: autonomous work check (:12)" is read as EVERY 12 MINUTES, with :12 as
its phase: an interval of 12 minutes anchored at 20:12 UTC, so it fires at :00, :12, :24, :36 and
:48. "Every 12 min" names the period and "(:12)" the first slot after the hour; the other reading
(once an hour at minute 12) would make it a slower copy of the hourly team-lead check. It wakes
all seven MAX Eidolons (the autonomous workers) with a two-minute jitter, so the concurrency cap
of four and the jitter stagger them ("stagger schedules", the synthesis's resource constraints).
"""

from datetime import UTC, datetime

TEAM_LEAD = ("mach42v2", "claude")
TONIGHT = datetime(2025, 12, 4, tzinfo=UTC)  # "Tonight (Phase 0)": the plan was created 2025-12-04 20:20 UTC


def _tonight(hour: int, minute: int) -> datetime:
    return TONIGHT.replace(hour=hour, minute=minute)


WAVES = [
    {
        "plan_key": "recurring-team-lead-check", "name": "Hourly team lead check", "kind": "team_lead_check",
        "target": TEAM_LEAD, "schedule": {"schedule_kind": "crontab", "cron_minute": "0"},
        "description": "Plan: 'Hourly: Team lead check (:00)'. Claude, the team lead (delegation matrix: "
                       "coordination & oversight), looks at the whole pipeline every hour on the hour.",
        "prompt": "Team lead check: review the pipeline, the open leads and the Eidolons' inboxes; "
                  "delegate or escalate what is stuck, then answer with a TASK_RESPONSE summary.",
    },
    {
        "plan_key": "recurring-autonomous-work-check", "name": "Autonomous work check (every 12 min)",
        "kind": "autonomous_work_check", "target": None,
        "schedule": {"schedule_kind": "interval", "interval_minutes": 12, "interval_anchor": _tonight(20, 12)},
        "jitter_seconds": 120, "answer_timeout_minutes": 10,
        "description": "Plan: 'Every 12 min: Autonomous work check (:12)'. Read as every 12 minutes with :12 as "
                       "its phase (an interval anchored at 20:12 UTC: :00, :12, :24, :36, :48), not once an hour "
                       "at minute 12. Wakes all MAX Eidolons, staggered by a 2-minute jitter and the cap.",
        "prompt": "Autonomous work check: continue the work of your stage (the leads in your inbox), then "
                  "answer with a TASK_RESPONSE saying what you did, or move a lead.",
    },
    {
        "plan_key": "morning-sync-prep", "name": "Morning sync prep (07:00)", "kind": "sync", "target": TEAM_LEAD,
        "schedule": {"schedule_kind": "crontab", "cron_minute": "0", "cron_hour": "7"},
        "description": "Plan: 'Tomorrow Morning 07:00 Morning sync prep', kept as a daily wave (0.4: 'Set morning "
                       "SapWave for Christian sync'): the team lead prepares the 08:00 sync.",
        "prompt": "Prepare the morning sync with Christian: progress since yesterday, blockers that need him, "
                  "today's plan. Answer with a TASK_RESPONSE holding the agenda.",
    },
    {
        "plan_key": "christian-sync", "name": "Christian sync (08:00)", "kind": "sync", "target": TEAM_LEAD,
        "schedule": {"schedule_kind": "crontab", "cron_minute": "0", "cron_hour": "8"},
        "description": "Plan: 'Tomorrow Morning 08:00 Christian sync - Phase 1 start' (the first one, 2025-12-05), "
                       "kept as the daily morning sync (0.4).",
        "prompt": "Sync with Christian now: walk through the agenda you prepared at 07:00; record his decisions.",
    },
    {
        "plan_key": "tonight-2030-delegate-scripts", "name": "Tonight 20:30: delegate script creation to Codex",
        "kind": "one_off_task", "target": ("mach42v2", "codex"),
        "schedule": {"schedule_kind": "clocked", "clocked_at": _tonight(20, 30)},
        "description": "Plan, Tonight (Phase 0), 2025-12-04 20:30 UTC. Delegation matrix: shell scripts -> Codex. "
                       "In the past: loaded as a record, never fires.",
        "prompt": "Create the Proxmox automation scripts (create-max-containers, bootstrap, install-clis, systemd).",
    },
    {
        "plan_key": "tonight-2100-delegate-config-research",
        "name": "Tonight 21:00: delegate config research to Gemini",
        "kind": "one_off_task", "target": ("mach42v2", "gemini"),
        "schedule": {"schedule_kind": "clocked", "clocked_at": _tonight(21, 0)},
        "description": "Plan, Tonight (Phase 0), 2025-12-04 21:00 UTC. Delegation matrix: agent config research -> "
                       "Gemini. In the past: loaded as a record, never fires.",
        "prompt": "Research agent schedules and config patterns; write config.yaml and CLAUDE.md per agent.",
    },
    {
        "plan_key": "tonight-2200-progress-scripts", "name": "Tonight 22:00: progress check - scripts",
        "kind": "progress_check", "target": TEAM_LEAD,
        "schedule": {"schedule_kind": "clocked", "clocked_at": _tonight(22, 0)},
        "description": "Plan, Tonight (Phase 0), 2025-12-04 22:00 UTC; the team lead checks (coordination & "
                       "oversight). In the past: loaded as a record, never fires.",
        "prompt": "Progress check: are Codex's scripts delivered and reviewed?",
    },
    {
        "plan_key": "tonight-2300-progress-configs", "name": "Tonight 23:00: progress check - configs",
        "kind": "progress_check", "target": TEAM_LEAD,
        "schedule": {"schedule_kind": "clocked", "clocked_at": _tonight(23, 0)},
        "description": "Plan, Tonight (Phase 0), 2025-12-04 23:00 UTC; the team lead checks. In the past: loaded "
                       "as a record, never fires.",
        "prompt": "Progress check: are Gemini's seven agent configs delivered?",
    },
]
