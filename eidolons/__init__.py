"""The eidolons app: the nine Eidolons, their CLI agents, M365 mailboxes and API tokens, the signals
in their inboxes (delivery, long-poll wake-ups, the YAML mirror) and their heartbeats.

It stands on the kernel only: its code imports neither leads nor provisioning (a signal's lead and
an Eidolon's container are foreign keys named by string: the tables refer upward, the code does
not). Which Eidolon owns a stage and an Eidolon's agent of a kind are looked up here, once
(``eidolons.selectors``), for every app.
"""
