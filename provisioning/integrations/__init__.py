"""Outside systems the checklist talks to: the Proxmox API and the executors that run scripts.

Nothing here imports the provisioning domain (services, the engine, the step registry): records
come in as arguments, and failures leave as these packages' own error types, which are not domain
errors. The checklist engine turns them into step outcomes (``provisioning.engine.failures``).
"""
