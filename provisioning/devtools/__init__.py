"""Development-only tools: the embedded local Proxmox (fakepve) used by `make run`, tests and bench."""
