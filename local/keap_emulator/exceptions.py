"""Wire errors of the ContactService emulator: Keap faults and their codes."""

from __future__ import annotations

# faultCode -> category, as Keap's faultStrings are "[Category]Message" (facts §3). Code 6 is the odd
# one out: Keap writes "[Loading]" there, not "[LoadingError]".
CATEGORIES: dict[int, str] = {
    1: "InvalidConfig",
    2: "InvalidKey",
    3: "UnexpectedError",
    4: "DatabaseError",
    5: "RecordNotFound",
    6: "Loading",
    7: "NoTableAccess",
    8: "NoFieldAccess",
    9: "NoTableFound",
    10: "NoFieldFound",
    11: "NoFields",
    12: "InvalidParameter",
    13: "FailedLoginAttempt",
    14: "NoAccess",
    15: "FailedLoginAttemptPasswordExpired",
}

# Faults raised by the XML-RPC library layer rather than by Keap's services carry code 0 and no
# bracketed category ("No such handler: ...", "Failed to parse XML-RPC request: ...").
LIBRARY = 0


class KeapFault(Exception):
    """A fault Keap would answer with: `<fault>` carrying faultCode and faultString."""

    def __init__(self, code: int, string: str) -> None:
        super().__init__(code, string)
        self.code = code
        self.string = string

    @classmethod
    def of(cls, code: int, message: str) -> KeapFault:
        """Build a fault whose string is prefixed with the category of `code`, Keap-style."""
        category = CATEGORIES.get(code)
        return cls(code, f"[{category}]{message}" if category else message)

    def __str__(self) -> str:
        return f"{self.code}: {self.string}"

    def __repr__(self) -> str:
        return f"KeapFault({self.code!r}, {self.string!r})"
