"""The one exception root of ctid and its specific subclasses."""


class CtidError(Exception):
    """Root of every error ctid raises on purpose."""


class ConfigError(CtidError):
    """A configuration file is invalid; `errors` holds one line per problem (file:line:column: message)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class AmiError(CtidError):
    """An AMI action failed or the connection is not usable."""


class AmiActionError(AmiError):
    """Asterisk answered an action with Response: Error; `message` is its Message, `response` its headers."""

    def __init__(self, text: str, message: str = "", response: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.message = message or text
        self.response = response or {}


class AmiTimeout(AmiError):
    """No response to an action within its timeout."""


class AmiNotConnected(AmiError):
    """An action was sent while the AMI connection is down."""
