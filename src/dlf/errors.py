"""One kind of error a user can fix: its message is one line naming the bad value and the fix."""


class DlfError(Exception):
    """A bad input or setting, reported to the user as a single line (no traceback) and a non-zero exit."""


class Diverged(DlfError):
    """Training stopped because the loss or a weight stopped being finite (a sweep records the job as `diverged`)."""


def require(condition: bool, message: str) -> None:
    """Raise DlfError(message) unless `condition` holds."""
    if not condition:
        raise DlfError(message)
