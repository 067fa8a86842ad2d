"""OAuth 2.0 for the drive providers (Google Drive, OneDrive, Dropbox, Box).

A provider declares its endpoints (`oauth: ClassVar[OAuthEndpoints]`), the option `client_id`
and the secrets `client_secret` (optional: public clients use PKCE alone) and `token` (JSON,
see `Token`). At run time an `OAuthSession` hands out access tokens and renews them; a renewed
token is saved through the provider's `SecretStore` (the vault), under its cross-process lock,
so several cdir processes sharing one vault refresh once and never lose a rotated refresh
token (Box issues a new one on every refresh and the old one stops working).

`provider add` gets the first token by one of three flows (`authorize`): a redirect to a
one-shot server on 127.0.0.1 (RFC 8252, with PKCE, RFC 7636), the device flow (RFC 8628) on a
headless machine when the service offers one, or else pasting the redirect URL back.
"""

from cdir.providers.base import SecretStore
from cdir.providers.oauth.flows import authorize, authorize_device, authorize_local, authorize_paste
from cdir.providers.oauth.session import BearerAuth, OAuthEndpoints, OAuthSession, Token

__all__ = [
    "BearerAuth",
    "OAuthEndpoints",
    "OAuthSession",
    "SecretStore",
    "Token",
    "authorize",
    "authorize_device",
    "authorize_local",
    "authorize_paste",
]
