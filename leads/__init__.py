"""The leads app: leads on their way through the seven stages, the stage machine (``leads.stages``)
every move goes through, each lead's history and artifacts, and the sales funnel.

It builds on eidolons (a stage's owner, the signals a move sends) and the kernel.
"""
