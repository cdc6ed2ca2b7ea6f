"""Why a script could not be run at all (transport or configuration), as opposed to failing.

These are integration errors, not domain errors: the checklist engine turns them into a failed
step that says what to fix. ``transient`` says whether trying again later may help.
"""


class ExecutorError(Exception):
    """The script could not be run at all; ``message`` says what to fix."""

    code = "executor_error"
    transient = False

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class ExecutorConfigError(ExecutorError):
    code = "executor_config_error"


class ExecutorConnectionError(ExecutorError):
    code = "executor_connection_error"
    transient = True


class ExecutorHostKeyError(ExecutorError):
    code = "executor_host_key_error"


class ExecutorAuthError(ExecutorError):
    code = "executor_auth_error"
