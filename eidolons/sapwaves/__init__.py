"""SapWaves: the schedules that wake the Eidolons (issue 9).

``slots`` computes when a wave is due (pure, no database); ``services`` saves waves (keeping each
one's django-celery-beat PeriodicTask in step), fires slots exactly once, dispatches under the
concurrency cap and records outcomes; ``selectors`` reads them for the admin and the staff page.
This package imports no ``leads`` or ``provisioning``: leads tell it about moves through
``services.sapwave_runs_mark_answered``.
"""
