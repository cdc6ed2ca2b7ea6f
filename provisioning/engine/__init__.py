"""The checklist engine: ``advance`` (one turn of an attempt), ``failures`` (outside errors as
outcomes), ``outcome`` (what a turn decided), ``transitions`` (the cell state machine as data),
``queue`` (Celery messages by task name, on commit), ``reaper`` (attempts past their limit,
stalled chains)."""
