"""How a new API key's secrets are printed, the one time they exist outside the key holder's hands:
the bootstrap key of ``ssbg init`` / ``ssbg serve`` and the keys of ``ssbg api-keys create``.

Plain lines, not a Rich box or table: people copy these values, so nothing may be wrapped or cut.
"""


def print_secrets_once(
    title: str,
    *,
    api_key: str,
    key_id: str,
    totp_secret: str | None,
    totp_uri: str | None,
    advice: list[str],
) -> None:
    """``title``, the raw key, its id, the TOTP secret and URI (when the role has them), then
    ``advice`` lines; on stdout, flushed."""
    rows = [("API key:", api_key), ("key id:", key_id)]
    if totp_secret is not None:
        rows.append(("TOTP secret:", totp_secret))
    if totp_uri is not None:
        rows.append(("TOTP URI:", totp_uri))
    lines = ["", title, *(f"  {name:<12} {value}" for name, value in rows), *advice, ""]
    print("\n".join(lines), flush=True)
