"""Provider webhook routes, one module per provider, each verified the provider's way."""
