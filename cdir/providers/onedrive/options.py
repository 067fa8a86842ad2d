"""The onedrive options and the Microsoft identity platform endpoints of a tenant."""

from __future__ import annotations

from cdir.providers.common import MiB
from cdir.providers.oauth import OAuthEndpoints
from cdir.providers.options import OptionSpec

FRAGMENT_UNIT = 320 * 1024  # upload session fragments are multiples of this (Graph's rule)
LOGIN = "https://login.microsoftonline.com"
SCOPES = ("Files.ReadWrite.All", "offline_access")


def endpoints(tenant: str) -> OAuthEndpoints:
    """`tenant`: "common" (any account), "consumers", "organizations", or a tenant id/domain."""
    base = f"{LOGIN}/{tenant}/oauth2/v2.0"
    return OAuthEndpoints(
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        device_url=f"{base}/devicecode",
        scopes=SCOPES,
    )


OPTIONS = (
    OptionSpec(
        "client_id",
        "application (client) id of your app registration in Microsoft Entra; required",
    ),
    OptionSpec("client_secret", "the app's client secret (confidential apps only)", secret=True),
    OptionSpec("token", "OAuth token (JSON), written by the sign-in", secret=True),
    OptionSpec(
        "tenant",
        "Microsoft identity tenant: common, consumers, organizations or an id",
        default="common",
    ),
    OptionSpec(
        "drive_id",
        "the drive: me/drive (your own, personal or business), a drive id, or a Graph path "
        "such as sites/{site-id}/drive",
        default="me/drive",
    ),
    OptionSpec(
        "graph_url",
        "Microsoft Graph base URL (national clouds differ)",
        default="https://graph.microsoft.com/v1.0",
    ),
    OptionSpec("page_size", "entries per listing page ($top)", kind="int", default=500, minimum=1),
    OptionSpec(
        "chunk_size",
        "upload session fragment: a multiple of 320 KiB, at most 60 MiB",
        kind="size",
        default=10 * MiB,
        minimum=FRAGMENT_UNIT,
    ),
    OptionSpec(
        "retries",
        "attempts after throttling (429/503) or a dropped connection",
        kind="int",
        default=6,
        minimum=0,
    ),
    OptionSpec("timeout", "seconds to wait for a response", kind="float", default=60.0, minimum=1),
    OptionSpec(
        "copy_timeout",
        "seconds to wait for a server-side copy to finish",
        kind="float",
        default=600.0,
        minimum=1,
    ),
)
