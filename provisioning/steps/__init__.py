"""What each automated checklist step does, one turn at a time (the handlers the registry names)."""
