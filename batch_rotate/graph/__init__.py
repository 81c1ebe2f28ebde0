"""Microsoft Graph client: transport, JSON batching, throttling and sign-in."""
