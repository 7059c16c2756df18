"""Model adapters behind small Protocols, and the manifest of where default weights come from."""
