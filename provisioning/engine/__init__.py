"""The checklist engine: ``advance`` (one turn of an attempt), ``failures`` (outside errors as
outcomes), ``lease`` (a claimed turn's lease, renewed while it runs), ``outcome`` (what a turn decided),
``transitions`` (the cell state machine as data),
``queue`` (Celery messages by task name, on commit), ``reaper`` (lost turns sent again, attempts
past their limit, stalled chains)."""
