"""The project's one exception type.

Every error a user can cause (a bad image, a wrong weights file, a run that
would not fit in memory, a run that diverged) is raised as `ApmVizError` with a
one-line human message. Faces (app, command line) show `str(err)` and carry on.
"""


class ApmVizError(Exception):
    """A user-facing error with a one-line message."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
