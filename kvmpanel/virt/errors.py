class HypervisorError(Exception):
    """A hypervisor operation failed.

    `permanent` tells callers whether retrying can help: False for an unreachable host or a
    dropped connection, True for a refusal (domain already running, invalid XML, no such domain).
    `code` is a short machine-readable reason (e.g. "no-domain", "unreachable", "invalid-state").
    """

    def __init__(self, message: str, *, permanent: bool = True, code: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code

    def __str__(self) -> str:
        return self.message
