"""The one exception type the API raises for anything a user got wrong."""

from __future__ import annotations

__all__ = ["VirtioLabError"]


class VirtioLabError(ValueError):
    """Bad input or a combination QEMU refuses.

    The message is a single line that says what to do; where QEMU 7.2 has its own
    message for the problem, the message contains QEMU's text verbatim.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, hint appended the way QEMU prints it
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split("\n")) if "\n" in text else text
