"""The reference executor container: a Cloudflare-Container-style Python service."""
