"""Leads moving through the seven MAX stages (the architecture synthesis's ClientState)."""
